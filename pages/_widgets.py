"""Widgets the pages share: settings generated from a config's fields, metric cards, the run picker, links to other
pages, empty states, and images enlarged for the screen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st

from opc_core.report import text as ui_text
from opc_core.report.tables import run_label
from pages._services import UNLEARN_PAGE, dataset, store

INFO = "ℹ"  # Unicode icons: ":material/...:" icons are fetched from a font server; these DejaVu draws


# --- navigation and empty states -------------------------------------------------------------------------------------
def link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page; a plain hint when the page runs on its own (no navigation registered)."""
    try:
        st.page_link(page, label=label, icon=icon)
    except Exception:  # StreamlitPageNotFoundError when a page script runs alone (e.g. in a test)
        st.markdown(f"→ **{label}** (in the sidebar)")


def empty_state(text: str) -> None:
    """An info box saying what is missing, and the way to the Unlearn page that makes it."""
    st.info(text, icon=INFO)
    link(UNLEARN_PAGE, "Go to the Unlearn page", "✂")


# --- guided reading --------------------------------------------------------------------------------------------------
def reading(chart: str, values: Sequence[tuple[str, str, float | None]] = ()) -> None:
    """The guided-reading caption of ``chart`` under it: what to look for, and each ``(method, metric key, value)``
    beside its measured expected range (:func:`opc_core.report.text.reading`)."""
    st.caption(ui_text.reading(chart, list(values)))


def chart(fig, key: str, chart_id: str, values: Sequence[tuple[str, str, float | None]] = (), **kw):
    """A plotly chart with its guided-reading caption; returns the chart's event (selections)."""
    event = st.plotly_chart(fig, key=key, **kw)
    reading(chart_id, values)
    return event


# --- runs ------------------------------------------------------------------------------------------------------------
def run_picker(
    label: str,
    key: str,
    *,
    multi: bool = False,
    status: str | tuple = "done",
    kind: str = "unlearn",
    default_id: str | None = None,
):
    """A select box (or multiselect) over the store's runs; None / [] plus an empty-state hint when there are none.

    Opens on ``default_id`` if it is among them; else, when the newest run belongs to a benchmark, on that benchmark
    (all its runs in the order they ran, or its first run); else on the newest run(s).
    """
    runs = store().list(kind=kind, status=status)
    if not runs:
        empty_state(
            f"No finished {kind} run yet. Launch one on the Unlearn page (a few seconds on the small CNN), "
            "or the shallow-vs-deep preset on the home page."
        )
        return [] if multi else None
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    bench = [r.id for r in reversed(runs) if r.parent == runs[0].parent] if runs[0].parent is not None else []
    if multi:
        default = [default_id] if default_id in by_id else bench or ids[: min(3, len(ids))]
        chosen = st.multiselect(label, ids, default=default, format_func=lambda i: run_label(by_id[i]), key=key)
        return [by_id[i] for i in chosen]
    index = ids.index(default_id) if default_id in by_id else ids.index(bench[0]) if bench else 0
    chosen = st.selectbox(label, ids, index=index, format_func=lambda i: run_label(by_id[i]), key=key)
    return by_id.get(chosen)


# --- widgets from a config dataclass's fields ------------------------------------------------------------------------
def config_widgets(fields: Sequence[dict], values: dict[str, Any], key: str, skip: Sequence[str] = ()) -> dict:
    """One widget per field of ``describe_fields(Config)`` (key ``{key}_{field}``): help text, min/max, choices;
    initial values ``values`` (else each field's default), in three columns.

    Returns:
        ``{field: value}`` as chosen.
    """
    out: dict[str, Any] = {}
    cols = st.columns(3)
    for i, f in enumerate(x for x in fields if x["name"] not in skip):
        with cols[i % 3]:
            out[f["name"]] = _field_widget(f, values.get(f["name"], f["default"]), f"{key}_{f['name']}")
    return out


def _field_widget(f: dict, value: Any, key: str) -> Any:
    """The widget of one field, by its choices or type; returns its value as that type."""
    label, helptext = f["name"].replace("_", " "), f.get("help")
    if "choices" in f:
        choices = list(f["choices"])
        index = choices.index(value) if value in choices else 0
        return st.selectbox(label, choices, index=index, help=helptext, key=key)
    if f["type"] == "bool":
        return st.checkbox(label, value=bool(value), help=helptext, key=key)
    if f["type"] == "int":
        lo, hi = (None if f.get(b) is None else int(f[b]) for b in ("min", "max"))
        return int(st.number_input(label, lo, hi, int(value), step=1, help=helptext, key=key))
    if f["type"] == "float":
        lo, hi = (None if f.get(b) is None else float(f[b]) for b in ("min", "max"))
        v = float(value)
        fmt = "%.2e" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else "%.4g"
        step = 10 ** np.floor(np.log10(abs(v))) / 10 if v else 0.01  # a tenth of the value's order of magnitude
        return float(st.number_input(label, lo, hi, v, step=step, format=fmt, help=helptext, key=key))
    return st.text_input(label, value=str(value), help=helptext, key=key)


# --- metrics ---------------------------------------------------------------------------------------------------------
def metric_cards(metrics: dict, keys: Sequence[str], original: dict | None = None, unit: str = "%") -> None:
    """``st.metric`` per key with its one-line explanation as tooltip and the change from the original model."""
    cols = st.columns(len(keys))
    for col, k in zip(cols, keys):
        v = metrics.get(k)
        before = (original or {}).get(k)
        delta = None if v is None or before is None else f"{v - before:+.3g} vs original"
        text = "—" if v is None else (f"{v:.1f}{unit}" if unit else f"{v:.3g}")
        col.metric(ui_text.label(k), text, delta=delta, help=ui_text.explain(k), delta_color="off")


def explain_caption(keys: Sequence[str]) -> None:
    """A compact legend: label, explanation and good direction of each metric."""
    st.caption("  \n".join(f"**{ui_text.label(k)}**: {ui_text.explain(k)}" for k in keys))


# --- images ----------------------------------------------------------------------------------------------------------
def to_image(x: np.ndarray, size: int = 64) -> np.ndarray:
    """An image array (C, H, W) uint8 or float in [0, 1] -> (size, size[, 3]) uint8, enlarged with nearest pixels."""
    from PIL import Image

    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255).round().astype(np.uint8)
    arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.NEAREST))


@st.cache_data(show_spinner=False)
def class_examples(name: str, per_class: int = 1) -> list[tuple[str, list[np.ndarray]]]:
    """The first ``per_class`` training images of every class: ``[(class name, [image, ...]), ...]``."""
    data = dataset(name)
    y = data.train_y.numpy()
    return [
        (cls, [to_image(data.train_x[i].numpy()) for i in np.nonzero(y == c)[0][:per_class]])
        for c, cls in enumerate(data.classes)
    ]
