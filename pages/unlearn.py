"""Unlearn: choose what to forget and a method, launch it as a job, watch its loss terms and UA/RA live."""

from __future__ import annotations

import dataclasses

import streamlit as st

from opc_core.data import make_split
from opc_core.methods import UnlearnConfig, get_method, list_methods, make_config
from opc_core.report import plots
from opc_core.report import text as ui_text
from pages import _shared as ui

RESULT_KEYS = ("ua", "ra", "ta", "mia", "forget_test_acc")
REPR_KEYS = ("contraction_radius", "cka_forget", "entropy_forget", "feat_norm_forget", "logit_norm_forget")
COMMON = {f.name for f in dataclasses.fields(UnlearnConfig)}
NEXT = [
    (ui.FEATURES_PAGE, "See its feature space", "scatter_plot"),
    (ui.RECOVERY_PAGE, "Attack it: recovery", "lock_open"),
    (ui.INVERSION_PAGE, "Attack it: gradient inversion", "image_search"),
]

st.title("Unlearn")
choice = ui.current_model()
if not choice["checkpoint"]:
    st.warning(f"No pretrained {choice['model']} for {choice['dataset']} yet: train or upload one first.")
    ui.link(ui.MODEL_PAGE, "Model page", ":material/neurology:")
    st.stop()
data = ui.dataset(choice["dataset"])
st.caption(f"Model: **{choice['name']}** ({choice['model']} on {choice['dataset']}) — change it on the Model page.")

st.subheader("1 · What to forget")
mode = st.radio("Forget", ["whole classes", "a random fraction"], horizontal=True, key="ul_mode")
classes = list(range(data.num_classes))
if mode == "whole classes":
    examples = ui.class_examples(choice["dataset"])
    st.image([imgs[0] for _, imgs in examples], caption=[f"{c} · {n}" for c, (n, _) in enumerate(examples)], width=64)
    forget_classes = st.multiselect(
        "Forget classes (the paper: 3 of 10)",
        classes,
        default=classes[:3],
        format_func=lambda c: f"{c} · {data.classes[c]}",
        key="ul_classes",
    )
    forget_ratio = None
else:
    forget_ratio = st.slider("Fraction of the training set to forget", 0.01, 0.5, 0.1, 0.01, key="ul_ratio")
    forget_classes = None
split_seed = st.number_input(
    "Split seed", 0, 10**6, 0, help="Seeds the random forget draw and the test halves", key="ul_seed"
)
if forget_ratio is not None or (forget_classes and len(forget_classes) < data.num_classes):
    split = make_split(data, forget_classes=forget_classes, forget_ratio=forget_ratio, seed=int(split_seed))
    y = data.train_y.cpu()
    st.plotly_chart(plots.split_bars(y[split.forget_idx].numpy(), y[split.retain_idx].numpy(), data.classes),
                    key="ul_split")

st.subheader("2 · Method and settings")
names = list_methods()
method = st.selectbox(
    "Method",
    names,
    index=names.index("opc"),
    key="ul_method",
    format_func=lambda m: f"{m} — {get_method(m).description}",
)
desc = get_method(method).describe()
st.caption(f"Paper: {desc['paper']}" if desc["paper"] else "")
if desc["class_wise_only"] and forget_ratio is not None:
    st.warning(f"{method} only supports class-wise forgetting: choose whole classes.")
preset = dataclasses.asdict(make_config(method, {}, choice["dataset"]))
own = [f for f in desc["config"] if f["name"] not in COMMON or f["name"] in ("epochs", "lr")]
key = f"hp_{method}_{choice['dataset']}"
settings = ui.config_widgets(own, preset, key)
with st.expander("More optimisation settings"):
    settings |= ui.config_widgets([f for f in desc["config"] if f not in own], preset, key)

helptext = ui_text.explain("mia") + " Two SVC fits: the slowest part of the final evaluation on a CPU."
mia = st.checkbox("Also score MIA-efficacy", value=True, key="ul_mia", help=helptext)
ready = (forget_ratio is not None or bool(forget_classes)) and not (desc["class_wise_only"] and forget_ratio)
if not forget_classes and forget_ratio is None:
    st.warning("Choose at least one class to forget.")
elif forget_classes and len(forget_classes) == data.num_classes:
    st.warning("Forgetting every class leaves nothing to retain.")
    ready = False
if st.button("Launch", type="primary", disabled=not ready, key="ul_launch"):
    params = {
        "dataset": choice["dataset"],
        "model": choice["model"],
        "method": method,
        "checkpoint": choice["checkpoint"],
        "forget_classes": forget_classes,
        "forget_ratio": forget_ratio,
        "seed": int(split_seed),
        "overrides": settings,
        "mia": mia,
    }
    st.session_state["unlearn_run"] = ui.manager().submit("unlearn", params, title=f"{method} on {choice['dataset']}")
    st.session_state.pop("ul_steps", None)

st.divider()
run_id = st.session_state.get("unlearn_run")
if run_id is None or not ui.store().exists(run_id):
    latest = ui.store().list(kind="unlearn", limit=1)
    run_id = latest[0].id if latest else None
if run_id is None:
    st.info("No run yet: choose what to forget and a method above, then press **Launch**.", icon=":material/info:")
    st.stop()


def steps_of(rid: str) -> list[dict]:
    """All step records of the run, fetched incrementally (the fragment polls every second)."""
    cached = st.session_state.get("ul_steps")
    if not cached or cached[0] != rid:
        cached = (rid, [])
    recs = cached[1] + ui.store().steps(rid, after=cached[1][-1]["step"] if cached[1] else 0)
    st.session_state["ul_steps"] = (rid, recs)
    return recs


def curves(rid: str, steps: list[dict]) -> None:
    if not steps:
        done = ui.store().get(rid).final  # a benchmark's runs stream their steps to the benchmark's own record
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
    run = ui.store().get(rid)
    if run.final:
        st.rerun()  # the whole page, once: show the final results
    st.subheader(f"Run {rid}")
    ui.job_panel(rid, "ul")
    job = ui.owner(run).id  # a benchmark streams its runs' steps into its own record
    steps = steps_of(job)
    curves(job, steps)
    if not steps:
        ui.poll_soon(run)


run = ui.store().get(run_id)
if run.active:
    live(run_id)
    st.stop()
st.subheader(f"Run {run_id}")
ui.status_badge(run)
st.caption(ui.run_label(run))
if run.status != "done":
    ui.show_failure(run)
else:
    m = run.metrics
    ui.metric_cards(m, RESULT_KEYS, m.get("original"))
    rep = m.get("representation") or {}
    ui.metric_cards(rep, REPR_KEYS, {k: rep.get(f"{k}_original") for k in REPR_KEYS}, unit="")
    if rep.get("cka_degenerate"):
        st.caption("CKA is degenerate here: the forget set's features collapsed to (almost) one point.")
    with st.expander("What these numbers mean"):
        ui.explain_caption(RESULT_KEYS + REPR_KEYS)
    st.caption(f"{m.get('steps', 0)} steps in {m.get('seconds', 0):.1f} s.")
    for col, (page, text, icon) in zip(st.columns(3), NEXT):
        with col:
            ui.link(page, text, f":material/{icon}:")
curves(run_id, steps_of(run_id))
