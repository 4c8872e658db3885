"""Tables, charts and the exported report of stored unlearn runs: what the Compare page shows and exports, headless.

``python -m opc_core report --out DIR`` writes the same three files the page offers: a self-contained HTML report
(plotly.js inlined, no network needed to open it), a CSV of the table and the runs' full records as JSON.
"""

from __future__ import annotations

import dataclasses
import html
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from opc_core.report import text as ui_text
from opc_core.runs.record import forget_text
from opc_core.runs.run import Run

LEGEND_KEYS = ("ua", "ra", "ta", "mia", "recovered_ua_fm", "contraction_radius", "psnr")


def run_params(run: Run) -> dict[str, Any]:
    """What a run was asked to do (its typed record as a dict), with the forget set it actually used (its split)."""
    params = dataclasses.asdict(run.params)
    if run.split:  # the resolved forget set: a default request (None) stored the classes it chose
        for key in ("forget_classes", "forget_ratio"):
            if key in params and run.split.get(key) is not None:
                params[key] = run.split[key]
    return params


def method_label(run: Run) -> str | None:
    """The method of an unlearn run as the benchmark names it: ``opc``, or a variant such as ``opc[layer=features]``."""
    return run.params.name if run.kind == "unlearn" else None


def run_label(run: Run) -> str:
    """One readable line naming a run: method and variant (or attack) · dataset · what was forgotten · when it was
    created, plus "demo" for the shipped demo's runs and its status when it did not finish."""
    p = run_params(run)
    what = forget_text(p.get("forget_classes"), p.get("forget_ratio"))
    name = method_label(run) or p.get("attack") or run.kind
    when = time.strftime("%d %b %H:%M:%S", time.localtime(run.created))
    tail = (" · demo" if run.metrics.get("demo") else "") + ("" if run.status == "done" else f" · {run.status}")
    return f"{name} · {p.get('dataset', '?')} · {what} · seed {p.get('seed', 0)} · {when}{tail}"


def run_row(run: Run) -> dict[str, Any]:
    """One flat table row of an unlearn run: what it was and its headline numbers."""
    p, m = run_params(run), run.metrics
    rec = m.get("recovery") or {}
    inv = m.get("inversion") or {}
    rep = m.get("representation") or {}
    forget = forget_text(p.get("forget_classes"), p.get("forget_ratio"))
    return {
        "name": run_label(run),
        "status": run.status,
        "method": method_label(run),
        "dataset": p.get("dataset"),
        "model": p.get("model"),
        "forget": forget,
        "UA": m.get("ua"),
        "RA": m.get("ra"),
        "TA": m.get("ta"),
        "MIA": m.get("mia"),
        **{f"UA after {a}": (rec.get(a) or {}).get("recovered_ua") for a in rec},
        "contraction radius": rep.get("contraction_radius"),
        "PSNR unlearned": (inv.get("unlearned") or {}).get("psnr"),
        "PSNR original": (inv.get("original") or {}).get("psnr"),
        "seconds": m.get("seconds"),
        "run": run.id,
    }


def metric_value(run: Run, key: str) -> float | None:
    """A run's value of metric ``key``: a top-level metric, ``recovered_ua_<attack>``, a representation statistic,
    or ``psnr`` / ``ssim`` of its inversion (the unlearned model's)."""
    m = run.metrics
    if key.startswith("recovered_ua_"):
        return ((m.get("recovery") or {}).get(key.removeprefix("recovered_ua_")) or {}).get("recovered_ua")
    if key in ("psnr", "ssim"):
        return ((m.get("inversion") or {}).get("unlearned") or {}).get(key)
    value = m.get(key, (m.get("representation") or {}).get(key))
    return value if isinstance(value, (int, float)) else None


def rounded(table, digits: int = 2):
    """The table with every number rounded to ``digits`` decimals (what the CSV export writes)."""
    return table.round(digits)


def chart_rows(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """The finished runs, oldest first, as rows for :func:`opc_core.report.plots.metric_bars` / ``recovery_bars``
    (method label + short id)."""
    return [
        {
            **r.metrics,
            "method": f"{method_label(r)} ({r.id[-6:]})",  # after the metrics, whose "method" lacks variant and id
            "recovered_ua": {a: v.get("recovered_ua") for a, v in (r.metrics.get("recovery") or {}).items()},
        }
        for r in sorted(runs, key=lambda r: r.created)
        if r.done
    ]


def figures(rows: Sequence[dict[str, Any]]) -> list:
    """The comparison charts of :func:`chart_rows`: UA/RA/TA/MIA bars, and the recovery bars when any run has them."""
    from opc_core.report import plots

    if not rows:
        return []
    keys = ("ua", "ra", "ta", "mia")
    labels = {k: ui_text.label(k) for k in keys}
    out = [plots.metric_bars(rows, keys, labels, "Forgetting (UA, MIA) and retention (RA, TA)")]
    attacked = [r for r in rows if r["recovered_ua"]]
    if attacked:
        out.append(plots.recovery_bars(attacked))
    return out


def records(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """The runs' full records (config, split summary, metrics) for the JSON export."""
    return [
        {
            "id": r.id,
            "status": r.status,
            "config": r.config,
            "split_summary": {k: r.split.get(k) for k in ("mode", "forget_classes", "forget_ratio", "seed")}
            if r.split
            else None,
            "metrics": r.metrics,
        }
        for r in runs
    ]


REPORT_CSS = (
    "body{font-family:sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em}img{max-width:100%}"
    "table{border-collapse:collapse;font-size:11px;width:100%;table-layout:fixed}"
    "td,th{border:1px solid #ccc;padding:3px 4px;text-align:right;overflow-wrap:anywhere}"
    "td:first-child,th:first-child{text-align:left;width:18%}.js-plotly-plot,.plotly-graph-div{max-width:100%}"
)


def report_html(
    title: str, table, charts: Sequence, notes: Sequence[str] = (), images: Sequence[tuple[str, str]] = ()
) -> str:
    """A self-contained HTML report that fits the page width: the table (a DataFrame; empty cells blank), the plotly
    figures (plotly.js inlined once), ``images`` (``(heading, data URI)``: the feature-map grid, the inversion gallery)
    and what every number means."""
    parts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="100%", config={"responsive": True})
        for i, fig in enumerate(charts)
    ]
    parts += [f"<h2>{html.escape(head)}</h2><img src='{uri}' alt='{html.escape(head)}'>" for head, uri in images]
    legend = "".join(
        f"<li><b>{html.escape(ui_text.label(k))}</b>: {html.escape(ui_text.explain(k))}</li>" for k in LEGEND_KEYS
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        f"<style>{REPORT_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + "".join(f"<p>{html.escape(n)}</p>" for n in notes)
        + _blank_empty(table.drop(columns=[c for c in ("run",) if c in table])).to_html(
            index=False, na_rep="", float_format=lambda v: f"{v:.2f}"
        )
        + "".join(parts)
        + f"<h2>What the numbers mean</h2><ul>{legend}</ul></body></html>"
    )


def _blank_empty(table):
    """Numeric columns as floats (a missing value is NaN, drawn blank); other columns with None drawn blank."""
    import pandas as pd

    out = table.copy()
    for col in out.columns:
        values = [v for v in out[col] if v is not None]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out[col] = (
            pd.to_numeric(out[col], errors="coerce") if numeric else out[col].map(lambda v: "" if v is None else v)
        )
    return out


def default_title(n_runs: int) -> str:
    return f"OPC Lab report — {n_runs} run(s), {time.strftime('%Y-%m-%d %H:%M')}"


def write_report(runs: Sequence[Run], out: str | Path, title: str | None = None) -> dict[str, str]:
    """Write report.html, runs.csv and runs.json of ``runs`` into folder ``out``; returns the three paths."""
    import pandas as pd

    if not runs:
        raise ValueError("no runs to report: finish an unlearn run first (or check the --runs ids)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file: the report needs a folder (for report.html, runs.csv and runs.json)")
    out.mkdir(parents=True, exist_ok=True)
    from opc_core.report.handout import report_images
    from opc_core.runs.store import RunStore

    table = pd.DataFrame([run_row(r) for r in runs])
    paths = {"html": out / "report.html", "csv": out / "runs.csv", "json": out / "runs.json"}
    images = report_images(RunStore(runs[0].folder.parent.parent), runs)
    paths["html"].write_text(
        report_html(title or default_title(len(runs)), table, figures(chart_rows(runs)), images=images),
        encoding="utf-8",
    )
    rounded(table).to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps(records(runs), indent=2, default=str), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}
