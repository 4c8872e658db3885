"""Feature space: original vs unlearned features in one shared 2-D map, the contraction over the run, the depth view,
and any single point's image with its predictions before and after."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from opc_core.report import plots
from opc_core.report import text as ui_text
from opc_core.report.tables import method_label, run_params
from pages._services import checkpoint_model, dataset, store
from pages._widgets import run_picker, to_image


@st.cache_data(show_spinner=False, max_entries=16)
def embedding(run_id: str, method: str, home: str) -> dict:
    from opc_core.workflows.explore import embedding_for_run

    return embedding_for_run(run_id, method=method, store=store())


@st.cache_data(show_spinner=False, max_entries=16)
def depth(run_id: str, home: str) -> list[dict]:
    from opc_core.workflows.explore import depth_for_run

    return depth_for_run(run_id, store=store())


def predictions(ckpt: str, x: np.ndarray, data) -> pd.DataFrame:
    import torch

    model = checkpoint_model(ckpt)
    with torch.inference_mode():
        p = torch.softmax(model(data.normalize(torch.from_numpy(x)[None])), 1)[0].numpy()  # (K,)
    top = np.argsort(p)[::-1][:3]
    return pd.DataFrame({"class": [data.classes[i] for i in top], "probability (%)": (100 * p[top]).round(1)})


st.title("Feature space")
st.markdown(
    "Penultimate features of a fixed sample of the training set (red: the forget set D_f, grey: retained). "
    "The map is fitted on the **original** model and the unlearned model's features are placed into the "
    "**same** map: shallow forgetting leaves the red clusters where they were; one-point contraction "
    "collapses them."
)
run = run_picker("Unlearn run", "fs_run", default_id=st.session_state.get("unlearn_run"))
if run is None:
    st.stop()
params, home = run_params(run), str(store().home)
method = st.radio(
    "Projection",
    ["umap", "pca"],
    horizontal=True,
    key="fs_method",
    format_func=lambda m: {
        "umap": "UMAP (non-linear; the first map takes 10–60 s while numba compiles)",
        "pca": "PCA (instant)",
    }[m],
)
shown = st.session_state.setdefault("fs_shown", set())
if (run.id, method) not in shown and st.button("Compute the map", type="primary", key="fs_go"):
    shown.add((run.id, method))
if (run.id, method) not in shown:
    st.info("Press **Compute the map** (it reads the stored models and snapshots).", icon=":material/info:")
    st.stop()
with st.spinner(f"Projecting features with {method.upper()}…"):
    emb = embedding(run.id, method, home)

data = dataset(params["dataset"])
is_f, labels, idx = np.asarray(emb["is_forget"]), np.asarray(emb["labels"]), np.asarray(emb["idx"])
frames = emb["frames"]
# shared axes: every point of both final maps, and the bulk (1st-99th percentile) of the snapshots' transient spread
ends = np.concatenate([emb["original"], emb["unlearned"]])
mid = np.concatenate([p for _, p in frames]) if frames else ends
lo = np.minimum(ends.min(0), np.percentile(mid, 1, axis=0))
hi = np.maximum(ends.max(0), np.percentile(mid, 99, axis=0))
pad = 0.05 * (hi - lo + 1e-9)
ranges = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
hover = [f"#{i} · {data.classes[c]}" for i, c in enumerate(labels)]
left, right = st.columns(2)
ev_o = left.plotly_chart(
    plots.embedding_scatter(emb["original"], is_f, labels, data.classes, "Original model", hover, ranges),
    on_select="rerun",
    selection_mode="points",
    key=f"fs_orig_{run.id}_{method}",
)
ev_u = right.plotly_chart(
    plots.embedding_scatter(emb["unlearned"], is_f, labels, data.classes, f"After {method_label(run)}", hover, ranges),
    on_select="rerun",
    selection_mode="points",
    key=f"fs_unl_{run.id}_{method}",
)

st.subheader("The contraction, step by step")
if frames:
    steps = [s for s, _ in frames]
    at = st.select_slider("Snapshot at step", steps, value=steps[-1], key=f"fs_step_{run.id}")
    pts = dict(frames)[at]
    st.plotly_chart(
        plots.embedding_scatter(pts, is_f, labels, data.classes, f"Features at step {at}", hover, ranges),
        key=f"fs_frame_{run.id}_{method}",
    )
else:
    st.caption("This run stored no snapshots.")

st.subheader("One image, before and after")
picked = [p for ev in (ev_o, ev_u) for p in (ev.selection.points if ev and ev.selection else [])]
custom = picked[0].get("customdata") if picked else None
point_key = f"fs_point_{run.id}"
if custom is not None and st.session_state.get("fs_picked") != (point_key, int(np.ravel(custom)[0])):
    st.session_state["fs_picked"] = (point_key, int(np.ravel(custom)[0]))  # a new click moves the number input
    st.session_state[point_key] = min(int(np.ravel(custom)[0]), len(idx) - 1)
pos = st.number_input("Point (click one in a map, or type its number)", 0, len(idx) - 1, key=point_key)
i = int(idx[pos])
x = data.train_x[i].numpy()
cols = st.columns([1, 2, 2])
cols[0].image(to_image(x, 112), caption=f"{data.classes[int(labels[pos])]} ({'forget' if is_f[pos] else 'retain'})")
with cols[1]:
    st.caption("Original model")
    st.dataframe(
        predictions(run.metrics.get("original_checkpoint") or params.get("checkpoint"), x, data),
        hide_index=True,
    )
with cols[2]:
    st.caption(f"After {method_label(run)}")
    st.dataframe(predictions(str(run.artifact_path("checkpoint")), x, data), hide_index=True)

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
