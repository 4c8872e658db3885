"""Feature space: original vs unlearned features in one shared 2-D map, forget points coloured by their true class,
beside each map the numbers that say whether the classes are really gone; the run's snapshots as an animation; every
run of a benchmark in one grid; where the forget set's predictions go; and the depth view."""

from __future__ import annotations

import numpy as np
import streamlit as st

from opc_core.report import plots
from opc_core.report import text as ui_text
from opc_core.report.tables import metric_value, run_params
from opc_core.workflows.explore import has_maps
from pages._proofs import depth_metrics, display, one_image
from pages._services import dataset, store
from pages._widgets import INFO, reading, run_picker


@st.cache_data(show_spinner=False, max_entries=16)
def embedding(run_id: str, method: str, home: str) -> dict:
    from opc_core.workflows.explore import embedding_for_run

    return embedding_for_run(run_id, method=method, store=store())


@st.cache_data(show_spinner=False, max_entries=8)
def grid(run_id: str, method: str, home: str) -> dict:
    from opc_core.workflows.proofs import bench_maps

    return bench_maps(run_id, method, store())


@st.cache_data(show_spinner=False, max_entries=16)
def confusion(run_id: str, home: str) -> dict:
    from opc_core.workflows.proofs import confusion_for_run

    return confusion_for_run(run_id, store())


@st.cache_data(show_spinner=False, max_entries=16)
def depth(run_id: str, home: str) -> list[dict]:
    from opc_core.workflows.explore import depth_for_run

    return depth_for_run(run_id, store=store())


def shared_ranges(*sets: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axes that hold every point of the given maps (1st-99th percentile of the transient snapshot spread)."""
    pts = np.concatenate(sets)
    lo, hi = np.percentile(pts, 0.5, axis=0), np.percentile(pts, 99.5, axis=0)
    pad = 0.08 * (hi - lo + 1e-9)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


st.title("Feature space")
st.markdown(
    "Penultimate features of a fixed sample of the training set: retained images grey, the forget set D_f coloured "
    "by its **true** class. The map is fitted on the **original** model; the unlearned model's features are placed "
    "into the **same** map. A forget cluster that shrinks but keeps its colours apart has *not* lost its classes: "
    "read the numbers beside each map (probe inside D_f, UA after FM), not the size of the blob."
)
run = run_picker("Unlearn run", "fs_run", default_id=st.session_state.get("unlearn_run"))
if run is None:
    st.stop()
params, home = run_params(run), str(store().home)
method = st.radio(
    "Projection",
    ["pca", "umap"],
    horizontal=True,
    key="fs_method",
    format_func=lambda m: {"umap": "UMAP (non-linear; a few seconds when not stored)", "pca": "PCA (linear, instant)"}[
        m
    ],
)
only = st.toggle("Forget set only", key="fs_only", help="Hide the retained images to see D_f's classes alone.")
shown = st.session_state.setdefault("fs_shown", set())
if has_maps(run):  # stored by the worker right after the run (and shipped with the demo): shown at once
    shown.add((run.id, method))
if (run.id, method) not in shown and st.button("Compute the map", type="primary", key="fs_go"):
    shown.add((run.id, method))
if (run.id, method) not in shown:
    st.info("Press **Compute the map** (it reads the stored models and snapshots).", icon=INFO)
    st.stop()
with st.spinner(f"Projecting features with {method.upper()}…"):
    emb = embedding(run.id, method, home)
data = dataset(params["dataset"])
is_f, labels = np.asarray(emb["is_forget"]), np.asarray(emb["labels"])
frames = emb["frames"]
ranges = shared_ranges(emb["original"], emb["unlearned"], *[p for _, p in frames])
hover = [f"#{i} · {data.classes[c]}" for i, c in enumerate(labels)]
events = []
for col, key, title in zip(st.columns(2), ("original", "unlearned"), ("Original model", f"After {display(run)}")):
    fig = plots.embedding_scatter(emb[key], is_f, labels, data.classes, title, hover, ranges, only)
    events.append(col.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"fs_{key}_{run.id}_{method}"))
    with col:  # each map its reading; the unlearned one with its measured value
        reading("map", [(display(run), "recovered_ua_fm", metric_value(run, "recovered_ua_fm"))] * (key != "original"))
depth_metrics(run)
one_image(run, emb, data, events)

st.subheader("The run, step by step")
if frames:
    st.plotly_chart(
        plots.embedding_animation(frames, is_f, labels, data.classes, ranges, only), key=f"fs_anim_{run.id}_{method}"
    )
    reading("frames")
else:
    st.caption("This run stored no snapshots.")

st.subheader("Where the forget set's predictions go")
conf = confusion(run.id, home)
st.plotly_chart(
    plots.forget_confusion(
        {"original": conf["original"], f"after {display(run)}": conf["unlearned"]}, conf["classes"], data.classes
    ),
    key=f"fs_conf_{run.id}",
)
reading("confusion")

st.subheader("Every run of the benchmark, one map")
if st.toggle("Show the grid (computes each run's features, a few seconds)", key=f"fs_grid_{run.id}"):
    with st.spinner("Placing every run into the original's map…"):
        g = grid(run.id, method, home)
    names = {n: store().get(rid) for n, rid in g["run_ids"].items()}
    caps = {
        n: "UA after FM {:.0f} · probe inside D_f {:.0f}%".format(
            ((r.metrics.get("recovery") or {}).get("fm") or {}).get("recovered_ua") or float("nan"),
            (r.metrics.get("diagnostic") or {}).get("probe_inside") or float("nan"),
        )
        for n, r in names.items()
    }
    fig = plots.embedding_grid(g["maps"], np.asarray(g["is_forget"]), np.asarray(g["labels"]), data.classes, caps, only)
    st.plotly_chart(fig, key=f"fs_gridfig_{run.id}_{method}_{only}")
    reading("grid")

st.subheader("How deep does it go? Per block")
st.caption(f"{ui_text.explain('norm_ratio')}  \n{ui_text.explain('probe_acc_forget')}")
if st.toggle("Compute the depth view (a linear probe per block, a few seconds)", key=f"fs_depth_{run.id}"):
    with st.spinner("Probing every block…"):
        rows = depth(run.id, home)
    a, b = st.columns(2)
    a.plotly_chart(
        plots.depth_lines(rows, "norm_ratio", "Feature norm D_f / D_r", "ratio (↓ contracted)"), key=f"fs_dn_{run.id}"
    )
    b.plotly_chart(
        plots.depth_lines(rows, "probe_acc_forget", "Linear-probe accuracy on D_f", "% (↓ forgotten)"),
        key=f"fs_dp_{run.id}",
    )
    reading("depth")
