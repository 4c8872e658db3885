"""Unlearn: choose what to forget and a method, launch it as a job, watch its loss terms and UA/RA live."""

from __future__ import annotations

import dataclasses

import streamlit as st

from opc_core.data import make_split
from opc_core.methods import UnlearnConfig, get_method, list_methods, make_config
from opc_core.report import plots
from opc_core.report import text as ui_text
from pages._services import MODEL_PAGE, current_model, dataset, manager, store
from pages._unlearn_run import show_run
from pages._widgets import INFO, class_examples, config_widgets, link, reading, run_picker

COMMON = {f.name for f in dataclasses.fields(UnlearnConfig)}

st.title("Unlearn")
choice = current_model()
if not choice["checkpoint"]:
    st.warning(f"No pretrained {choice['model']} for {choice['dataset']} yet: train or upload one first.")
    link(MODEL_PAGE, "Model page", "⚙")
    st.stop()
data = dataset(choice["dataset"])
st.caption(f"Model: **{choice['name']}** ({choice['model']} on {choice['dataset']}) — change it on the Model page.")

st.subheader("1 · What to forget")
mode = st.radio("Forget", ["whole classes", "a random fraction"], horizontal=True, key="ul_mode")
classes = list(range(data.num_classes))
if mode == "whole classes":
    examples = class_examples(choice["dataset"])
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
    st.plotly_chart(
        plots.split_bars(y[split.forget_idx].numpy(), y[split.retain_idx].numpy(), data.classes), key="ul_split"
    )
    reading("split")

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
settings = config_widgets(own, preset, key)
with st.expander("More optimisation settings"):
    settings |= config_widgets([f for f in desc["config"] if f not in own], preset, key)

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
    st.session_state["unlearn_run"] = manager().submit("unlearn", params, title=f"{method} on {choice['dataset']}")
    st.session_state.pop("ul_steps", None)

st.divider()
st.subheader("3 · A run: live, or any past one")
if not store().list(kind="unlearn", limit=1):
    st.info("No run yet: choose what to forget and a method above, then press **Launch**.", icon=INFO)
    st.stop()
launched = st.session_state.get("unlearn_run")
if launched != st.session_state.get("ul_opened_for"):  # a new launch opens its run in the picker
    st.session_state["ul_opened_for"] = launched
    st.session_state.pop("ul_open", None)
run = run_picker("Open a run", "ul_open", status=None, default_id=launched)
if run is not None:
    show_run(run.id)
