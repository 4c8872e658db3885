"""Plotly figure builders shared by the dashboard pages, the HTML report and the benchmark.

Each function takes plain data (lists of dicts, arrays) and returns a ``plotly.graph_objects.Figure``; nothing here
draws to a screen or imports streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from opc_core.attacks.recovery import ATTACKS, get_attack, list_attacks

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
FORGET_COLOR, RETAIN_COLOR = "#D62728", "#9AA5B1"


def _layout(fig: go.Figure, title: str, height: int = 420, **kw) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=50, r=20, t=60, b=50),
        template="plotly_white",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1),
        **kw,
    )
    return fig


def loss_curves(steps: Sequence[Mapping], title: str = "Loss terms") -> go.Figure:
    """One line per named loss term over the steps: ``steps`` are ``{"step", "losses": {term: value}}`` records."""
    fig = go.Figure()
    terms = sorted({k for s in steps for k in s.get("losses", {})})
    for i, term in enumerate(terms):
        pts = [(s["step"], s["losses"][term]) for s in steps if term in s.get("losses", {})]
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                mode="lines",
                name=term,
                line=dict(color=PALETTE[i % len(PALETTE)]),
            )
        )
    return _layout(fig, title, xaxis_title="step", yaxis_title="value")


def split_bars(
    labels_forget: np.ndarray,
    labels_retain: np.ndarray,
    class_names: Sequence[str],
    title: str = "Training images to forget and to keep, per class",
) -> go.Figure:
    """Stacked bars of a split: per class, how many training images are in the forget set and in the retain set."""
    k = len(class_names)
    forget = np.bincount(np.asarray(labels_forget, dtype=np.int64), minlength=k)
    retain = np.bincount(np.asarray(labels_retain, dtype=np.int64), minlength=k)
    names = [f"{c} · {n}" for c, n in enumerate(class_names)]
    fig = go.Figure(
        [
            go.Bar(x=names, y=forget.tolist(), name=f"forget set D_f ({forget.sum():,})", marker_color=FORGET_COLOR),
            go.Bar(x=names, y=retain.tolist(), name=f"retain set D_r ({retain.sum():,})", marker_color=RETAIN_COLOR),
        ]
    )
    return _layout(fig, title, height=300, barmode="stack", yaxis_title="training images")


def eval_curves(steps: Sequence[Mapping], title: str = "Forgetting and retention during the run") -> go.Figure:
    """Periodic UA and RA (percent) over the steps, from records carrying ``evals``."""
    fig = go.Figure()
    for i, key in enumerate(("ua", "ra")):
        pts = [(s["step"], s["evals"][key]) for s in steps if s.get("evals") and key in s["evals"]]
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                mode="lines+markers",
                name={"ua": "UA (forget, ↑)", "ra": "RA (retain, ↑)"}[key],
                line=dict(color=[FORGET_COLOR, PALETTE[0]][i]),
            )
        )
    return _layout(fig, title, xaxis_title="step", yaxis_title="%", yaxis_range=[0, 101])


def _recovery_series(rows: Sequence[Mapping], attacks: Sequence[str] | None) -> list[tuple[str, list]]:
    """``[(legend label, value per row)]``: UA before any attack, then the recovered UA after each attack.

    ``attacks`` defaults to every registered recovery attack, in registry order; an unregistered name is shown as is.
    """
    series = [("UA (no attack)", [r.get("ua") for r in rows])]
    for a in list_attacks() if attacks is None else attacks:
        name = f"after {get_attack(a).label}" if a in ATTACKS else a
        series.append((name, [(r.get("recovered_ua") or {}).get(a) for r in rows]))
    return series


def recovery_bars(
    rows: Sequence[Mapping],
    attacks: Sequence[str] | None = None,
    title: str = "Unlearning accuracy before and after recovery attacks",
) -> go.Figure:
    """The paper-style grouped bars: per method, UA before any attack and the recovered UA after each attack.

    ``rows`` are ``{"method", "ua", "recovered_ua": {attack: value}}``; higher bars mean deeper forgetting. A series
    with no value at all is left out.
    """
    methods = [r["method"] for r in rows]
    fig = go.Figure()
    for i, (name, values) in enumerate(_recovery_series(rows, attacks)):
        if all(v is None for v in values):
            continue
        fig.add_trace(
            go.Bar(
                x=methods,
                y=values,
                name=name,
                marker_color=PALETTE[i % len(PALETTE)],
                hovertemplate="%{x}: %{y:.1f}%<extra>" + name + "</extra>",
            )
        )
    return _layout(
        fig, title, height=460, barmode="group", yaxis_title="UA on D_f (%) — higher = forgotten", yaxis_range=[0, 105]
    )


def embedding_scatter(
    points: np.ndarray,
    is_forget: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str,
    hover: Sequence[str] | None = None,
    ranges: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> go.Figure:
    """A 2-D map with the retain points grey and the forget points red (one marker symbol per forget class)."""
    fig = go.Figure()
    text = list(hover) if hover is not None else [class_names[int(c)] for c in labels]
    for forget in (False, True):
        m = is_forget == forget
        fig.add_trace(
            go.Scattergl(
                x=points[m, 0],
                y=points[m, 1],
                mode="markers",
                name="forget set D_f" if forget else "retain set D_r",
                marker=dict(
                    size=7 if forget else 5,
                    color=FORGET_COLOR if forget else RETAIN_COLOR,
                    opacity=0.9 if forget else 0.5,
                    line=dict(width=0),
                ),
                text=[t for t, k in zip(text, m) if k],
                customdata=np.nonzero(m)[0],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig = _layout(fig, title, height=460, xaxis_title="dim 1", yaxis_title="dim 2")
    if ranges is not None:
        fig.update_xaxes(range=list(ranges[0]))
        fig.update_yaxes(range=list(ranges[1]))
    return fig


def depth_lines(rows: Sequence[Mapping], metric: str, title: str, yaxis: str) -> go.Figure:
    """Per-block values of ``metric`` for each model: the depth view (input blocks left, logits right)."""
    fig = go.Figure()
    for i, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        rs = sorted((r for r in rows if r["model"] == name), key=lambda r: r["depth"])
        fig.add_trace(
            go.Scatter(
                x=[r["block"] for r in rs],
                y=[r[metric] for r in rs],
                mode="lines+markers",
                name=name,
                line=dict(color=PALETTE[i % len(PALETTE)]),
            )
        )
    return _layout(fig, title, xaxis_title="block (input → output)", yaxis_title=yaxis)


def metric_bars(rows: Sequence[Mapping], keys: Sequence[str], labels: Mapping[str, str], title: str) -> go.Figure:
    """Grouped bars of several percentage metrics (e.g. UA, RA, TA, MIA) per method."""
    fig = go.Figure()
    for i, key in enumerate(keys):
        fig.add_trace(
            go.Bar(
                x=[r["method"] for r in rows],
                y=[r.get(key) for r in rows],
                name=labels.get(key, key),
                marker_color=PALETTE[i % len(PALETTE)],
            )
        )
    return _layout(fig, title, barmode="group", yaxis_title="%", yaxis_range=[0, 105])


def recovery_bars_png(rows: Sequence[Mapping], path, attacks: Sequence[str] | None = None) -> None:
    """The same grouped bars as :func:`recovery_bars`, rendered to PNG with matplotlib (no browser needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [r["method"] for r in rows]
    series = _recovery_series(rows, attacks)
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(methods) + 3), 4.5), dpi=120)
    x = np.arange(len(methods))
    for i, (name, values) in enumerate(series):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name, color=PALETTE[i % len(PALETTE)])
    ax.set_xticks(x, methods, rotation=30, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("UA on D_f (%) — higher = forgotten")
    ax.set_title("Unlearning accuracy before and after recovery attacks")
    ax.legend(ncol=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
