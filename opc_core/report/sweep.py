"""A sweep's outputs: one row per cell, mean ± std over seeds per grid point, the sensitivity plots (each metric
against each swept number, one line per method variant), and the CSV / JSON / HTML / PNG export.

Every metric of a cell is aggregated: UA, RA, TA, MIA, the forget-test accuracy, each recovery attack's recovered UA
(``<attack> UA``), the numbers of the "where does the forgotten information live?" diagnostic (``diag.<field>``, when
a run's metrics have one), seconds, steps and seconds per step. The sensitivity plots show UA, TA, FM's recovered UA
and the diagnostic's FM on the head's null space and probe inside D_f; the table and CSV hold the rest.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opc_core.runs.store import RunStore
from opc_core.workflows.sweep import progress

HEADLINE = ("ua", "ra", "ta", "mia", "forget_test_acc", "seconds", "steps")
DIAG_SETTINGS = {"eps", "n_probe", "head_rank", "feature_dim", "probe_inside_chance"}  # how it ran, not a result
LABELS = {
    "ua": "UA",
    "ra": "RA",
    "ta": "TA",
    "mia": "MIA",
    "forget_test_acc": "forget-test acc.",
    "fm UA": "FM UA",
    "diag.fm_null_ua": "FM UA, null space",
    "diag.probe_inside": "probe inside D_f (acc.)",
}
PLOT_METRICS = ("ua", "ta", "fm UA", "diag.fm_null_ua", "diag.probe_inside")  # each when present
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def attack_columns(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``{"fm UA": 62.1, ..., "diag.fm_null_ua": 8.6, ...}``: each attack's recovered UA, the diagnostic's numbers."""
    out = {}
    for name, res in (metrics.get("recovery") or {}).items():
        if isinstance(res, Mapping) and _number(res.get("recovered_ua")) is not None:
            out[f"{name} UA"] = float(res["recovered_ua"])
    for field, value in (metrics.get("diagnostic") or {}).items():
        if field not in DIAG_SETTINGS and _number(value) is not None:
            out[f"diag.{field}"] = float(value)
    return out


def cell_rows(store: RunStore, sweep_id: str) -> list[dict[str, Any]]:
    """One row per cell, in grid order: what it is (variant, grid values, forget set, seed), its status and numbers."""
    rows = []
    children = {r.id: r for r in store.list(parent=sweep_id)}  # one query, splits summarised
    for entry in store.get(sweep_id).metrics.get("cells") or []:
        run = children.get(entry["run_id"])
        if run is None:  # deleted since
            continue
        m = run.metrics if run.done else {}
        row = {
            "run_id": run.id,
            "status": run.status,
            "variant": entry["variant"],
            **entry["point"],
            "forget": entry["forget"],
            "seed": entry["seed"],
        }
        row.update({k: _number(m.get(k)) for k in HEADLINE})
        if row["seconds"] and row["steps"]:
            row["s/step"] = row["seconds"] / row["steps"]
        row.update(attack_columns(m))
        rows.append(row)
    return rows


def grid_keys(store: RunStore, sweep_id: str) -> list[str]:
    """The setting names the sweep varies (in grid order, without the ``method:`` prefix)."""
    keys = [k.rpartition(":")[2] for k in store.get(sweep_id).config.get("grid", {})]
    return list(dict.fromkeys(keys))


def aggregate(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds of every numeric column, per (variant, grid values, forget set).

    A group's ``n`` counts its finished cells; ``<col> std`` is None with fewer than two.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variant"], *(str(r.get(k, "")) for k in keys), r["forget"]), []).append(r)
    skip = {"run_id", "status", "variant", "forget", "seed", *keys}
    out = []
    for (variant, *point, forget), members in groups.items():
        done = [m for m in members if m["status"] == "done"]
        row: dict[str, Any] = {"variant": variant, **dict(zip(keys, point)), "forget": forget, "n": len(done)}
        cols = list(dict.fromkeys(c for m in done for c in m if c not in skip))
        for col in cols:
            vals = [float(m[col]) for m in done if _number(m.get(col)) is not None]
            mean = sum(vals) / len(vals) if vals else None
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
            row[col], row[f"{col} std"] = mean, std
        out.append(row)
    return out


def swept(table: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    """Grid keys with more than one value, all numeric: what a sensitivity plot can put on its x axis."""
    out = []
    for k in keys:
        values = {r.get(k) for r in table if r.get(k) not in (None, "")}  # a method the key does not apply to: ""
        if len(values) > 1 and all(_number(_as_float(v)) is not None for v in values):
            out.append(k)
    return out


def _on_axis(table: Sequence[Mapping[str, Any]], x: str) -> list[Mapping[str, Any]]:
    return [r for r in table if _number(_as_float(r.get(x))) is not None]


def references(table: Sequence[Mapping[str, Any]], x: str) -> list[Mapping[str, Any]]:
    """Rows the swept key does not apply to (e.g. FT in a sweep of OPC's lam): drawn as horizontal references."""
    return [r for r in table if _number(_as_float(r.get(x))) is None]


def _as_float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def plot_metrics(table: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {c for r in table for c in r}
    return [m for m in PLOT_METRICS if m in present]


def series(table: Sequence[Mapping[str, Any]], x: str, keys: Sequence[str]) -> dict[str, list[Mapping[str, Any]]]:
    """The table's rows as lines over ``x``: one per variant, forget set and value of the other varied keys."""
    table = _on_axis(table, x)
    others = [k for k in keys if k != x and len({r.get(k) for r in table}) > 1]
    forgets = len({r["forget"] for r in table}) > 1
    lines: dict[str, list[Mapping[str, Any]]] = {}
    for r in table:
        name = r["variant"] + "".join(f" {k}={r.get(k)}" for k in others) + (f" · {r['forget']}" if forgets else "")
        lines.setdefault(name, []).append(r)
    return {name: sorted(rows, key=lambda r: float(r[x])) for name, rows in lines.items()}


def sensitivity_figure(table: Sequence[Mapping[str, Any]], x: str, keys: Sequence[str]):
    """Plotly: one panel per metric (UA, TA, FM UA, diagnostics) against ``x``, mean ± std over seeds."""
    from plotly.subplots import make_subplots

    metrics = plot_metrics(table)
    fig = make_subplots(rows=1, cols=max(1, len(metrics)), subplot_titles=[LABELS.get(m, m) for m in metrics])
    for i, (name, rows) in enumerate(series(table, x, keys).items()):
        for j, m in enumerate(metrics):
            pts = [r for r in rows if r.get(m) is not None]
            fig.add_scatter(
                x=[float(r[x]) for r in pts],
                y=[r[m] for r in pts],
                error_y=dict(type="data", array=[r.get(f"{m} std") or 0.0 for r in pts]),
                name=name,
                legendgroup=name,
                showlegend=j == 0,
                mode="lines+markers",
                line=dict(color=PALETTE[i % len(PALETTE)]),
                row=1,
                col=j + 1,
            )
    for r in references(table, x):
        for j, m in enumerate(metrics):
            if r.get(m) is not None:
                fig.add_hline(
                    y=r[m], line_dash="dash", line_color="gray", annotation_text=r["variant"], row=1, col=j + 1
                )
    fig.update_xaxes(title_text=x, type="log" if _log_axis(table, x) else "linear")
    fig.update_yaxes(title_text="%", range=[0, 101])
    fig.update_layout(height=380, template="plotly_white", title=f"Sensitivity to {x} (mean ± std over seeds)")
    return fig


def _log_axis(table: Sequence[Mapping[str, Any]], x: str) -> bool:
    values = [float(r[x]) for r in _on_axis(table, x)]
    return min(values) > 0 and max(values) / min(values) >= 20


def sensitivity_png(tables: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Matplotlib PNG for the docs: a row per swept key (``{key: aggregated table}``), a column per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(m for t in tables.values() for m in plot_metrics(t)))
    fig, axes = plt.subplots(len(tables), len(metrics), figsize=(3.6 * len(metrics), 3.0 * len(tables)), squeeze=False)
    for row, (x, table) in enumerate(tables.items()):
        keys = sorted(_grid_like(table))
        for col, m in enumerate(metrics):
            ax = axes[row][col]
            for i, (name, rows) in enumerate(series(table, x, keys).items()):
                pts = [r for r in rows if r.get(m) is not None]
                ax.errorbar(
                    [float(r[x]) for r in pts],
                    [r[m] for r in pts],
                    yerr=[r.get(f"{m} std") or 0.0 for r in pts],
                    label=name,
                    color=PALETTE[i % len(PALETTE)],
                    marker="o",
                    capsize=3,
                )
            for r in references(table, x):
                if r.get(m) is not None:
                    ax.axhline(r[m], ls="--", color="gray", lw=1, label=f"{r['variant']} (reference)")
            ax.set_xscale("log" if _log_axis(table, x) else "linear")
            ax.set(xlabel=x, ylim=(0, 101), title=LABELS.get(m, m) + " (%)")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _grid_like(table: Sequence[Mapping[str, Any]]) -> set[str]:
    """Columns that hold grid values (text) rather than results (numbers)."""
    return {k for r in table for k, v in r.items() if isinstance(v, str) and k not in ("variant", "forget")}


def _pm(row: Mapping[str, Any], col: str, digits: int = 1) -> str:
    mean, std = row.get(col), row.get(f"{col} std")
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def table_columns(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """The result columns of the Markdown table, in a fixed order: UA RA TA MIA, the attacks, the plotted
    diagnostic numbers, cost (the CSV and JSON hold every column)."""
    present = list(dict.fromkeys(c for r in table for c, v in r.items() if not c.endswith(" std") and v is not None))
    lead = [c for c in ("ua", "ra", "ta", "mia") if c in present]
    attacks = [c for c in present if c.endswith(" UA")]
    diag = [c for c in PLOT_METRICS if c.startswith("diag.") and c in present]
    cost = [c for c in ("steps", "s/step", "seconds") if c in present]
    return lead + attacks + diag + cost


def markdown_table(table: Sequence[Mapping[str, Any]]) -> str:
    """The aggregated table in Markdown: grid values, then mean ± std of each result column over the seeds."""
    if not table:
        return "(no finished cells)"
    grid = _grid_like(table)
    keys = list(dict.fromkeys(k for r in table for k in r if k in grid))
    keys = [k for k in keys if len({r.get(k) for r in table if r.get(k)}) > 1]  # a pinned setting: said once
    cols = table_columns(table)
    head = ["variant", *keys, "forget", "n", *[LABELS.get(c, c) for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [r["variant"], *[str(r.get(k, "")) for k in keys], r["forget"], str(r["n"])]
        cells += [_pm(r, c, {"s/step": 3, "steps": 0}.get(c, 1)) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(store: RunStore, sweep_id: str) -> dict[str, Any]:
    """What the CLI and the page show: the sweep's progress, its cells and the aggregated table."""
    keys = grid_keys(store, sweep_id)
    rows = cell_rows(store, sweep_id)
    return {
        "run_id": sweep_id,
        "progress": progress(store, sweep_id).text(),
        "keys": keys,
        "swept": swept(aggregate(rows, keys), keys),
        "cells": rows,
        "table": aggregate(rows, keys),
    }


def write_sweep(store: RunStore, sweep_id: str, out: Path) -> dict[str, Path]:
    """Write cells.csv, sweep.csv (aggregated), sweep.json, sweep.html (table + plots) and one PNG per swept key."""
    import pandas as pd

    s = summarise(store, sweep_id)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / n for k, n in (("cells", "cells.csv"), ("csv", "sweep.csv"), ("json", "sweep.json"))}
    pd.DataFrame(s["cells"]).to_csv(files["cells"], index=False)
    pd.DataFrame(s["table"]).to_csv(files["csv"], index=False)
    params = store.get(sweep_id).config
    files["json"].write_text(json.dumps({"params": params, **s}, indent=2, default=str))
    figs = [sensitivity_figure(s["table"], x, s["keys"]) for x in s["swept"]]
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    files["html"] = out / "sweep.html"
    files["html"].write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Sweep " + sweep_id + "</title></head><body>"
        f"<h1>Sweep {sweep_id}</h1><p>{s['progress']}</p>"
        + pd.DataFrame(s["table"]).to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.2f}")
        + "".join(parts)
        + "</body></html>",
        encoding="utf-8",
    )
    if s["swept"]:
        files["png"] = sensitivity_png({x: s["table"] for x in s["swept"]}, out / "sensitivity.png")
    return files


def docs_section(heading: str, store: RunStore, ids: Mapping[str, str], png: Path, intro: str = "") -> str:
    """A Markdown section for the docs: the figure, ``intro`` (its reading), then per sweep its settings and table."""
    lines = [heading, "", f"![sensitivity]({png.as_posix()})", ""]
    if intro:
        lines += [intro.rstrip("\n"), ""]
    for key, sweep_id in ids.items():
        p = store.get(sweep_id).config
        lines += [
            f"### {key} (sweep `{sweep_id}`)",
            "",
            f"{p['dataset']} / {p['model']}, methods {', '.join(p['methods'])}, grid "
            + ", ".join(f"`{k}=[{','.join(map(str, v))}]`" for k, v in p["grid"].items())
            + f", seeds {', '.join(map(str, p['seeds']))}, attacks "
            + (", ".join(p["attacks"]) or "none" if p["attacks"] is not None else "all")
            + "; "
            + progress(store, sweep_id).text()
            + ".",
            "",
            markdown_table([r for r in summarise(store, sweep_id)["table"] if r["n"]]),
            "",
        ]
    return "\n".join(lines)


def trends(table: Sequence[Mapping[str, Any]], x: str) -> list[str]:
    """One line per variant: each plotted metric at the smallest and the largest value of ``x`` (mean ± std)."""
    out = []
    for name, rows in series([r for r in table if r["n"]], x, [x]).items():
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            parts = [
                f"{LABELS.get(m, m)} {_pm(a, m)} → {_pm(b, m)}" for m in plot_metrics(rows) if a.get(m) is not None
            ]
            out.append(f"- {name}, {x} {a[x]} → {b[x]}: " + ", ".join(parts) + ".")
    return out
