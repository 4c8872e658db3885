"""The Unlearn page's lower half: the launched run, live while it runs (loss terms and UA/RA as they arrive) and its
results once it has finished (metric cards, representation statistics, links to the attack pages)."""

from __future__ import annotations

import streamlit as st

from opc_core.report import plots
from opc_core.report.tables import run_label
from pages._jobs import job_panel, owner, poll_soon, show_failure, status_badge
from pages._services import FEATURES_PAGE, INVERSION_PAGE, RECOVERY_PAGE, store
from pages._widgets import explain_caption, link, metric_cards

RESULT_KEYS = ("ua", "ra", "ta", "mia", "forget_test_acc")
REPR_KEYS = ("contraction_radius", "cka_forget", "entropy_forget", "feat_norm_forget", "logit_norm_forget")
NEXT = [
    (FEATURES_PAGE, "See its feature space", "scatter_plot"),
    (RECOVERY_PAGE, "Attack it: recovery", "lock_open"),
    (INVERSION_PAGE, "Attack it: gradient inversion", "image_search"),
]


def steps_of(rid: str) -> list[dict]:
    """All step records of the run, fetched incrementally (the fragment polls every second)."""
    cached = st.session_state.get("ul_steps")
    if not cached or cached[0] != rid:
        cached = (rid, [])
    recs = cached[1] + store().steps(rid, after=cached[1][-1]["step"] if cached[1] else 0)
    st.session_state["ul_steps"] = (rid, recs)
    return recs


def curves(rid: str, steps: list[dict]) -> None:
    """The loss terms and the periodic UA / RA of the step records, side by side."""
    if not steps:
        done = store().get(rid).final  # a benchmark's runs stream their steps to the benchmark's own record
        st.caption("This run stored no step records." if done else "Waiting for the first step…")
        return
    left, right = st.columns(2)
    left.plotly_chart(plots.loss_curves(steps, f"Loss terms ({len(steps)} steps)"), key=f"loss_{rid}")
    if any(s.get("evals") for s in steps):
        right.plotly_chart(plots.eval_curves(steps), key=f"eval_{rid}")
    else:
        right.caption("UA / RA appear at the first periodic evaluation.")


@st.fragment(run_every=1)
def live(rid: str) -> None:
    """The running job, redrawn every second; once it is final, one rerun of the whole page shows the results."""
    run = store().get(rid)
    if run.final:
        st.rerun()
    st.subheader(f"Run {rid}")
    job_panel(rid, "ul")
    job = owner(run).id  # a benchmark streams its runs' steps into its own record
    steps = steps_of(job)
    curves(job, steps)
    if not steps:
        poll_soon(run)


def results(run) -> None:
    """A finished run: its status, its error if it failed, else its metrics against the original model's."""
    st.subheader(f"Run {run.id}")
    status_badge(run)
    st.caption(run_label(run))
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
            link(page, text, f":material/{icon}:")


def show_run(run_id: str) -> None:
    """The run live while it is queued or running, else its results and its loss curves."""
    run = store().get(run_id)
    if run.active:
        live(run_id)
        return
    results(run)
    curves(run_id, steps_of(run_id))
