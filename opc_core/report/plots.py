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


def with_references(result: Mapping) -> list[dict]:
    """A benchmark's rows for the bars: the original model and retrain first (the references), then every other
    method, each named for display (``OPC (paper: logits)``, ``OPC-features``)."""
    from opc_core.methods.opc import method_label

    rows = [dict(r, method=method_label(r["method"])) for r in result["rows"]]
    refs = [r for r in rows if r["method"] == "retrain"]
    out = [dict(r, method="retrain (reference)") for r in refs]
    if result.get("original"):
        out.insert(0, dict(result["original"], method="original (reference)"))
    return out + [r for r in rows if r["method"] != "retrain"]


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


CLASS_COLORS = [
    "#1F77B4",
    "#FF7F0E",
    "#2CA02C",
    "#D62728",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#17BECF",
    "#BCBD22",
    "#7F7F7F",
]
"""One colour per class for the forget points (a blob that still separates by class shows as several colours)."""


def _scatter_traces(
    points: np.ndarray,
    is_forget: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    hover: Sequence[str] | None,
    forget_only: bool,
) -> list[go.Scattergl]:
    """Retain points grey (unless ``forget_only``), forget points one trace per true class in its own colour."""
    text = np.asarray(list(hover) if hover is not None else [class_names[int(c)] for c in labels], dtype=object)
    groups = [] if forget_only else [("retain set D_r", ~is_forget, RETAIN_COLOR, 5, 0.45)]
    for c in sorted({int(c) for c in labels[is_forget]}):
        groups.append((f"D_f · {class_names[c]}", is_forget & (labels == c), CLASS_COLORS[c % 10], 7, 0.9))
    return [
        go.Scattergl(
            x=points[m, 0],
            y=points[m, 1],
            mode="markers",
            name=name,
            marker=dict(size=size, color=color, opacity=opacity, line=dict(width=0)),
            text=text[m].tolist(),
            customdata=np.nonzero(m)[0],
            hovertemplate="%{text}<extra></extra>",
        )
        for name, m, color, size, opacity in groups
    ]


def embedding_scatter(
    points: np.ndarray,
    is_forget: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str,
    hover: Sequence[str] | None = None,
    ranges: tuple[tuple[float, float], tuple[float, float]] | None = None,
    forget_only: bool = False,
) -> go.Figure:
    """A 2-D map: retain points grey, forget points coloured by their TRUE class (``forget_only``: D_f alone)."""
    fig = go.Figure(_scatter_traces(points, is_forget, labels, class_names, hover, forget_only))
    fig = _layout(fig, title, height=460, xaxis_title="dim 1", yaxis_title="dim 2")
    # a map sits in a half-width column: a legend above it covered the panel title, so it goes under the plot
    fig.update_layout(margin=dict(b=90), legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0))
    if ranges is not None:
        fig.update_xaxes(range=list(ranges[0]))
        fig.update_yaxes(range=list(ranges[1]))
    return fig


def embedding_animation(
    frames: Sequence[tuple[int, np.ndarray]],
    is_forget: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    ranges: tuple[tuple[float, float], tuple[float, float]],
    forget_only: bool = False,
) -> go.Figure:
    """The snapshots of a run as one animated map with a play button and a step slider (shared axes)."""
    step0, pts0 = frames[0]
    traces = lambda pts: _scatter_traces(pts, is_forget, labels, class_names, None, forget_only)  # noqa: E731
    fig = go.Figure(data=traces(pts0), frames=[go.Frame(data=traces(p), name=str(s)) for s, p in frames])
    play = dict(frame=dict(duration=600, redraw=True), fromcurrent=True, transition=dict(duration=0))
    fig.update_layout(
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0,
                y=-0.12,
                xanchor="left",
                buttons=[
                    dict(label="▶ play", method="animate", args=[None, play]),
                    dict(label="❚❚ pause", method="animate", args=[[None], dict(mode="immediate")]),
                ],
            )
        ],
        sliders=[
            dict(
                x=0.15,
                y=-0.12,
                len=0.85,
                currentvalue=dict(prefix="step "),
                steps=[
                    dict(
                        label=str(s), method="animate", args=[[str(s)], dict(mode="immediate", frame=dict(redraw=True))]
                    )
                    for s, _ in frames
                ],
            )
        ],
    )
    fig = _layout(fig, f"Features over the run (snapshot at step {step0} first)", height=520)
    fig.update_xaxes(range=list(ranges[0]))
    fig.update_yaxes(range=list(ranges[1]))
    return fig


def embedding_grid(
    maps: Mapping[str, np.ndarray],
    is_forget: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    captions: Mapping[str, str] | None = None,
    forget_only: bool = False,
    cols: int = 3,
) -> go.Figure:
    """Every model's map in one grid with the SAME axes (``maps``: title -> (n, 2) points, original first)."""
    from plotly.subplots import make_subplots

    names = list(maps)
    rows = (len(names) + cols - 1) // cols
    titles = [f"{n}<br><sub>{(captions or {}).get(n, '')}</sub>" for n in names]
    fig = make_subplots(rows, cols, subplot_titles=titles, vertical_spacing=0.16 / max(rows - 1, 1) + 0.04)
    for i, name in enumerate(names):
        for t in _scatter_traces(maps[name], is_forget, labels, class_names, None, forget_only):
            t.showlegend = i == 0
            t.legendgroup = t.name
            fig.add_trace(t, row=i // cols + 1, col=i % cols + 1)
    pts = np.concatenate([np.asarray(p) for p in maps.values()])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.05 * (hi - lo + 1e-9)
    fig.update_xaxes(range=[lo[0] - pad[0], hi[0] + pad[0]], showticklabels=False)
    fig.update_yaxes(range=[lo[1] - pad[1], hi[1] + pad[1]], showticklabels=False)
    fig = _layout(fig, "", height=300 * rows + 60)
    fig.update_layout(margin=dict(t=70), legend=dict(orientation="h", yanchor="top", y=-0.02, x=0, xanchor="left"))
    return fig


def forget_confusion(
    matrices: Mapping[str, np.ndarray], forget: Sequence[int], class_names: Sequence[str]
) -> go.Figure:
    """Heatmaps side by side: rows = the forget classes (true), columns = every predicted class, in % of the row."""
    from plotly.subplots import make_subplots

    fig = make_subplots(1, len(matrices), subplot_titles=list(matrices), shared_yaxes=True)
    for i, m in enumerate(matrices.values()):
        rows = np.asarray(m, dtype=float)
        pct = 100 * rows / np.maximum(rows.sum(1, keepdims=True), 1)
        fig.add_trace(
            go.Heatmap(
                z=pct,
                x=list(class_names),
                y=[class_names[c] for c in forget],
                zmin=0,
                zmax=100,
                colorscale="Blues",
                showscale=i == len(matrices) - 1,
                text=np.round(pct).astype(int),
                texttemplate="%{text}",
                hovertemplate="true %{y} → predicted %{x}: %{z:.1f}%<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
    return _layout(fig, "Where the forget set's predictions go (% of each forget class)", height=320)


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
