"""How a page shows a background job: its status badge, progress bar, Cancel button, failure text, and polling.

Jobs run in worker processes; the pages only poll the run store (a fragment rerun each second), so the script thread
is the only one that calls ``st.*``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

from pages._services import manager, store

# status -> (badge colour, Unicode icon: ":material/...:" icons are fetched from a font server)
STATUS_STYLE = {
    "queued": ("gray", "▫"),
    "running": ("blue", "▶"),
    "done": ("green", "✔"),
    "failed": ("red", "✖"),
    "cancelled": ("orange", "◼"),
    "interrupted": ("orange", "⚠"),
}
FAST_POLL_S, FAST_POLL_FOR_S = 0.2, 20.0


def status_badge(run) -> None:
    color, icon = STATUS_STYLE.get(run.status, ("gray", "▪"))
    st.badge(run.status, icon=icon, color=color)


def show_failure(run) -> None:
    """Error text of a failed / cancelled / interrupted run, first line visible, the traceback folded."""
    text = run.error or "(no error text recorded)"
    head, _, rest = text.partition("\n")
    (st.error if run.status == "failed" else st.warning)(f"Run {run.id} {run.status}: {head}")
    if rest.strip():
        with st.expander("Details"):
            st.code(rest.strip(), language=None)


def bench_bar(run) -> None:
    """A comparison's one progress bar: the whole job's fraction and ETA, the current method and phase."""
    from opc_core.report.progress import bench_progress

    prog = bench_progress(run, store().list(kind="unlearn", parent=run.id))
    st.progress(prog.fraction, text=prog.text(run.duration_s or 0.0))


def progress(run) -> None:
    """Progress bar with step count and ETA (or the queue position of a queued run); one bar for a whole comparison."""
    if run.status == "running" and run.kind == "bench":
        bench_bar(run)
        return
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
    """Status, progress and a Cancel button (key ``cancel_{key}_{run_id}``) of one job; a benchmark's child run shows
    and cancels its benchmark."""
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
    elif run.status != "done":
        show_failure(run)


@st.fragment(run_every=1)
def watch_jobs(ids: Sequence[str], key: str) -> None:
    """Every second, a :func:`job_panel` per job; once all of them are final, one rerun of the whole page."""
    runs = [store().get(i) for i in ids]
    if all(r.final for r in runs):
        st.rerun()
    for r in runs:
        job_panel(r.id, key)


def poll_soon(run) -> None:
    """In a polling fragment, while a started job has reported no step yet: rerun the fragment in 0.2 s instead of
    waiting for its next 1 s tick (the first point after Launch is what a user waits for). A no-op outside a
    fragment rerun, for queued or finished runs, and 20 s after the run started."""
    if run.status != "running" or time.time() - (run.started or run.created) > FAST_POLL_FOR_S:
        return
    time.sleep(FAST_POLL_S)
    with contextlib.suppress(StreamlitAPIException):  # the fragment's first call, in a full-page run
        st.rerun(scope="fragment")
