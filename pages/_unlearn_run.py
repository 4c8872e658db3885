"""The Unlearn page's lower half: the launched run, live while it runs (loss terms and UA/RA as they arrive) and its
results once it has finished (metric cards, representation statistics, links to the attack pages)."""

from __future__ import annotations

import streamlit as st

from opc_core.report import plots
from opc_core.report.tables import run_label
from pages._jobs import job_panel, poll_soon, show_failure, status_badge
from pages._services import FEATURES_PAGE, INVERSION_PAGE, RECOVERY_PAGE, store
from pages._widgets import chart, explain_caption, link, metric_cards

RESULT_KEYS = ("ua", "ra", "ta", "mia", "forget_test_acc")
REPR_KEYS = ("contraction_radius", "cka_forget", "entropy_forget", "feat_norm_forget", "logit_norm_forget")
NEXT = [
    (FEATURES_PAGE, "See its feature space", "✳"),
    (RECOVERY_PAGE, "Attack it: recovery", "↩"),
    (INVERSION_PAGE, "Attack it: gradient inversion", "⚗"),
]


def steps_of(rid: str) -> list[dict]:
    """All step records of the run, fetched incrementally (the fragment polls every second)."""
    cached = st.session_state.get("ul_steps")
    if not cached or cached[0] != rid:
        cached = (rid, [])
    recs = cached[1] + store().steps(rid, after=cached[1][-1]["step"] if cached[1] else 0)
    st.session_state["ul_steps"] = (rid, recs)
    return recs


def curves(rid: str, steps: list[dict], method: str | None = None) -> None:
    """The loss terms and the periodic UA / RA of the step records, side by side, each with its reading."""
    if not steps:
        done = store().get(rid).final
        st.caption("This run stored no step records." if done else "Waiting for the first step…")
        return
    left, right = st.columns(2)
    with left:
        chart(plots.loss_curves(steps, f"Loss terms ({len(steps)} steps)"), f"loss_{rid}", "loss")
    last_ua = next((s["evals"].get("ua") for s in reversed(steps) if s.get("evals")), None)
    with right:
        if last_ua is not None:
            values = [(method, "ua", last_ua)] if method else []
            chart(plots.eval_curves(steps), f"eval_{rid}", "eval", values)
        else:
            st.caption("UA / RA appear at the first periodic evaluation.")


@st.fragment(run_every=1)
def live(rid: str) -> None:
    """The running job, redrawn every second; once it is final, one rerun of the whole page shows the results."""
    run = store().get(rid)
    if run.final:
        st.rerun()
    st.subheader(run_label(run))
    job_panel(rid, "ul")
    steps = steps_of(rid)  # every run stores its own steps, a benchmark's methods included
    curves(rid, steps, run.params.name)
    if not steps:
        poll_soon(run)


def results(run) -> None:
    """A finished run: its status, its error if it failed, else its metrics against the original model's."""
    st.subheader(run_label(run))
    status_badge(run)
    st.caption(f"Run id {run.id}" + (" · part of a shipped demo comparison" if run.metrics.get("demo") else ""))
    if run.status != "done":
        show_failure(run)
        return
    m = run.metrics
    metric_cards(m, RESULT_KEYS, m.get("original"))
    rep = m.get("representation") or {}
    metric_cards(rep, REPR_KEYS, {k: rep.get(f"{k}_original") for k in REPR_KEYS}, unit="")
    if rep.get("cka_degenerate"):
        st.caption("CKA is degenerate here: the forget set's features collapsed to (almost) one point.")
    with st.expander("What these numbers mean"):
        explain_caption(RESULT_KEYS + REPR_KEYS)
    st.caption(f"{m.get('steps', 0)} steps in {m.get('seconds', 0):.1f} s.")
    for col, (page, text, icon) in zip(st.columns(3), NEXT):
        with col:
            link(page, text, icon)


def show_run(run_id: str) -> None:
    """The run live while it is queued or running, else its results and its loss curves."""
    run = store().get(run_id)
    if run.active:
        live(run_id)
        return
    results(run)
    curves(run_id, steps_of(run_id), run.params.name if run.kind == "unlearn" else None)
