"""Pieces every dashboard page shares: the run store and job manager, cached data, the current model choice, run
pickers, widgets generated from a config's fields, status badges, live job progress and metric cards.

Only the script thread calls ``st.*``; jobs run in worker processes and the pages poll the run store. Nothing here
loads a model or imports UMAP at import time.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import streamlit as st
from streamlit.errors import StreamlitAPIException

from opc_core.env import paths
from opc_core.report import text as ui_text
from opc_core.report.tables import method_label, run_label, run_params  # noqa: F401  (the pages use them as ui.*)

MODEL_PAGE, UNLEARN_PAGE = "pages/model.py", "pages/unlearn.py"
FEATURES_PAGE, RECOVERY_PAGE = "pages/feature_space.py", "pages/recovery.py"
INVERSION_PAGE, COMPARE_PAGE = "pages/inversion.py", "pages/compare.py"
DEFAULT_DATASET, DEFAULT_MODEL = "fashion_mnist_small", "cnn_small"
# status -> (badge colour, icon)
STATUS_STYLE = {
    "queued": ("gray", "schedule"),
    "running": ("blue", "autorenew"),
    "done": ("green", "check_circle"),
    "failed": ("red", "error"),
    "cancelled": ("orange", "cancel"),
    "interrupted": ("orange", "warning"),
}


# --- services --------------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _services(home: str):
    from opc_core.jobs.manager import JobManager
    from opc_core.runs.store import RunStore

    store = RunStore(home)
    # a warm worker (imports done) makes Launch -> first loss point ~3 s faster; OPC_LAB_WARM_WORKER=0 turns it off
    return store, JobManager(store, max_running=1, warm=os.environ.get("OPC_LAB_WARM_WORKER", "1") != "0")


def store():
    """The run store of ``$OPC_LAB_HOME`` (one per home folder and server process)."""
    return _services(str(paths.home()))[0]


def manager():
    """The server's job manager (one GPU job at a time; the rest queue)."""
    return _services(str(paths.home()))[1]


@st.cache_resource(show_spinner=False)
def dataset(name: str):
    """A dataset on the CPU, loaded once per server."""
    from opc_core.data import load_dataset

    return load_dataset(name, device="cpu")


@st.cache_resource(show_spinner=False, max_entries=8)
def checkpoint_model(path: str):
    """A checkpoint's model on the CPU (for looking at single images)."""
    from opc_core.train.zoo import load_checkpoint

    return load_checkpoint(path, device="cpu")[0]


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


FAST_POLL_S, FAST_POLL_FOR_S = 0.2, 20.0


def poll_soon(run) -> None:
    """In a polling fragment, while a started job has reported no step yet: rerun the fragment in 0.2 s instead of
    waiting for its next 1 s tick (the first point after Launch is what a user waits for). A no-op outside a
    fragment rerun, for queued or finished runs, and 20 s after the run started."""
    if run.status != "running" or time.time() - (run.started or run.created) > FAST_POLL_FOR_S:
        return
    time.sleep(FAST_POLL_S)
    with contextlib.suppress(StreamlitAPIException):  # the fragment's first call, in a full-page run
        st.rerun(scope="fragment")


# --- the current model choice (kept in session state for every page) -------------------------------------------------
def current_model() -> dict[str, Any]:
    """``{"dataset", "model", "checkpoint", "name"}`` chosen on the Model page (default: the shipped embedded one)."""
    choice = st.session_state.get("model_choice")
    if choice is None:
        from opc_core.train.zoo import find_checkpoint

        entry = find_checkpoint(DEFAULT_DATASET, DEFAULT_MODEL)
        choice = {
            "dataset": DEFAULT_DATASET,
            "model": DEFAULT_MODEL,
            "checkpoint": entry.path if entry else None,
            "name": entry.name if entry else None,
        }
        st.session_state["model_choice"] = choice
    return choice


# --- runs ------------------------------------------------------------------------------------------------------------
def link(page: str, label: str, icon: str | None = None) -> None:
    """A link to another page; a plain hint when the page runs on its own (no navigation registered)."""
    try:
        st.page_link(page, label=label, icon=icon)
    except Exception:  # StreamlitPageNotFoundError when a page script runs alone (e.g. in a test)
        st.markdown(f"→ **{label}** (in the sidebar)")


def empty_state(text: str) -> None:
    st.info(text, icon=":material/info:")
    link(UNLEARN_PAGE, "Go to the Unlearn page", ":material/ink_eraser:")


def run_picker(
    label: str,
    key: str,
    *,
    multi: bool = False,
    status: str | tuple = "done",
    kind: str = "unlearn",
    default_id: str | None = None,
):
    """A select box (or multiselect) over the store's runs; None / [] plus an empty-state hint when there are none."""
    runs = store().list(kind=kind, status=status)
    if not runs:
        empty_state(
            f"No finished {kind} run yet. Launch one on the Unlearn page (a few seconds on the small CNN), "
            "or the shallow-vs-deep preset on the home page."
        )
        return [] if multi else None
    ids = [r.id for r in runs]
    by_id = {r.id: r for r in runs}
    if multi:
        if default_id in by_id:
            default = [default_id]
        elif runs[0].parent is not None:  # the newest run is a benchmark's: all of that benchmark, in its order
            default = [r.id for r in reversed(runs) if r.parent == runs[0].parent]
        else:
            default = ids[: min(3, len(ids))]
        chosen = st.multiselect(label, ids, default=default, format_func=lambda i: run_label(by_id[i]), key=key)
        return [by_id[i] for i in chosen]
    if default_id in by_id:
        index = ids.index(default_id)
    elif runs[0].parent is not None:  # the newest run is a benchmark's: open on its first method (OPC in the preset)
        index = ids.index(next(r.id for r in reversed(runs) if r.parent == runs[0].parent))
    else:
        index = 0
    chosen = st.selectbox(label, ids, index=index, format_func=lambda i: run_label(by_id[i]), key=key)
    return by_id.get(chosen)


def status_badge(run) -> None:
    color, icon = STATUS_STYLE.get(run.status, ("gray", "help"))
    st.badge(run.status, icon=f":material/{icon}:", color=color)


def show_failure(run) -> None:
    """Error text of a failed / cancelled / interrupted run, first line visible, the traceback folded."""
    text = run.error or "(no error text recorded)"
    head, _, rest = text.partition("\n")
    (st.error if run.status == "failed" else st.warning)(f"Run {run.id} {run.status}: {head}")
    if rest.strip():
        with st.expander("Details"):
            st.code(rest.strip(), language=None)


def progress(run) -> None:
    """Progress bar with step count and ETA (or the queue position of a queued run)."""
    if run.status == "queued":
        queue = [r.id for r in manager().queued()]
        pos = queue.index(run.id) + 1 if run.id in queue else "?"
        st.progress(0.0, text=f"queued: position {pos} of {len(queue)} (one job runs at a time)")
        return
    prog = run.progress or {}
    step, total, elapsed = prog.get("step", 0), prog.get("total") or 0, prog.get("elapsed_s", 0.0)
    if not total:
        st.progress(0.0, text="starting the worker (loading data and model)…")
        return
    eta = elapsed / step * (total - step) if step else float("nan")
    eta_text = f" · ETA {eta:.0f} s" if step and step < total else ""
    st.progress(min(step / total, 1.0), text=f"step {step} / {total} · {elapsed:.0f} s{eta_text}")


def owner(run):
    """The run whose job does the work: a benchmark's child unlearn run is executed (and cancelled) by the benchmark."""
    if run.kind == "unlearn" and run.parent and store().exists(run.parent):
        parent = store().get(run.parent)
        if parent.kind == "bench":
            return parent
    return run


def job_panel(run_id: str, key: str) -> None:
    """Status, progress and a Cancel button of one job (a benchmark's, for a benchmark's child run)."""
    run = store().get(run_id)
    job = owner(run) if run.active else run
    cols = st.columns([3, 1])
    with cols[0]:
        status_badge(run)
        st.caption(run.title + (f" — part of benchmark {job.id}" if job.id != run.id else ""))
    if job.active and cols[1].button("Cancel", key=f"cancel_{key}_{run_id}"):
        manager().cancel(job.id)
        st.toast("Cancel requested")
    if job.active:
        progress(job)
        if job.kind == "bench":
            methods = run_params(job).get("methods") or []
            now = next(iter((job.progress or {}).get("losses") or {}), "").split("/")[0]
            if now in methods:
                st.caption(f"Unlearning with {now} ({methods.index(now) + 1} of {len(methods)}); then the attacks.")
    elif run.status != "done":
        show_failure(run)


# --- widgets from a config dataclass's fields ------------------------------------------------------------------------
def config_widgets(fields: Sequence[dict], values: dict[str, Any], key: str, skip: Sequence[str] = ()) -> dict:
    """One widget per field of ``describe_fields(Config)``: help text, min/max, choices; initial values ``values``.

    Returns:
        ``{field: value}`` as chosen.
    """
    out: dict[str, Any] = {}
    cols = st.columns(3)
    for i, f in enumerate(x for x in fields if x["name"] not in skip):
        name, kind, value = f["name"], f["type"], values.get(f["name"], f["default"])
        label, wkey, helptext = name.replace("_", " "), f"{key}_{name}", f.get("help")
        with cols[i % 3]:
            if "choices" in f:
                choices = list(f["choices"])
                out[name] = st.selectbox(
                    label, choices, index=choices.index(value) if value in choices else 0, help=helptext, key=wkey
                )
            elif kind == "bool":
                out[name] = st.checkbox(label, value=bool(value), help=helptext, key=wkey)
            elif kind == "int":
                out[name] = int(
                    st.number_input(
                        label,
                        min_value=_int(f.get("min")),
                        max_value=_int(f.get("max")),
                        value=int(value),
                        step=1,
                        help=helptext,
                        key=wkey,
                    )
                )
            elif kind == "float":
                out[name] = float(
                    st.number_input(
                        label,
                        min_value=_num(f.get("min")),
                        max_value=_num(f.get("max")),
                        value=float(value),
                        format=_fmt(float(value)),
                        help=helptext,
                        key=wkey,
                        step=_step(float(value)),
                    )
                )
            else:
                out[name] = st.text_input(label, value=str(value), help=helptext, key=wkey)
    return out


def _int(v):
    return None if v is None else int(v)


def _num(v):
    return None if v is None else float(v)


def _fmt(v: float) -> str:
    return "%.2e" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else "%.4g"


def _step(v: float) -> float:
    return 10 ** np.floor(np.log10(abs(v))) / 10 if v else 0.01


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
