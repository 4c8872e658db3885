"""Model: choose a dataset and a pretrained model from the zoo, train a new base model as a job, or upload one."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opc_core.data import list_datasets
from opc_core.models import MODELS
from opc_core.train.zoo import MAX_UPLOAD_BYTES, install_checkpoint, list_checkpoints, unreadable_checkpoints
from pages._jobs import job_panel, watch_jobs
from pages._services import UNLEARN_PAGE, current_model, dataset, manager, store
from pages._widgets import INFO, link

st.title("Model")
st.markdown(
    "Unlearning starts from a **pretrained** classifier. Pick a dataset and an architecture, then one of the "
    "checkpoints in the zoo: the shipped ones, or ones you trained or uploaded here."
)
choice = current_model()
sets = {d["name"]: d for d in list_datasets()}
names = list(sets)
c1, c2 = st.columns(2)
ds = c1.selectbox(
    "Dataset",
    names,
    index=names.index(choice["dataset"]) if choice["dataset"] in names else 0,
    format_func=lambda n: n + ("" if sets[n]["available"] else " (not available offline)"),
    key="model_dataset",
)
c1.caption(sets[ds]["description"])
archs = MODELS.names()
arch = c2.selectbox(
    "Architecture",
    archs,
    index=archs.index(choice["model"]) if choice["model"] in archs else 0,
    key="model_arch",
    help="cnn_small is interactive on a CPU; resnet18 and vit_tiny want a GPU.",
)
if not sets[ds]["available"]:
    st.warning(f"{ds} is not on this machine: expected {', '.join(sets[ds]['missing'])} in {sets[ds]['folder']}.")
    st.stop()

st.subheader("Pretrained checkpoints")
entries = list_checkpoints(ds, arch)
for bad, why in unreadable_checkpoints().items():
    st.warning(f"Left out of the zoo: {why}. Fix or delete {bad} and its weights.", icon="⚠️")
if not entries:
    st.info(
        f"No pretrained {arch} for {ds} yet: train one below (a progress bar shows how far it got) or upload "
        f"a checkpoint. Until then the other pages keep using {choice['name']}.",
        icon=INFO,
    )
else:
    table = pd.DataFrame(
        [
            {
                "name": e.name,
                "test accuracy (%)": e.test_accuracy,
                "where": "shipped" if e.shipped else "local",
                "epochs": e.recipe.get("epochs"),
                "lr": e.recipe.get("lr"),
            }
            for e in entries
        ]
    )
    st.dataframe(table, hide_index=True)
    by_path = {e.path: e for e in entries}  # a local retrain may share its name with a shipped checkpoint
    current = choice["checkpoint"] if choice["checkpoint"] in by_path else entries[0].path
    picked = st.radio(
        "Use",
        list(by_path),
        index=list(by_path).index(current),
        key="model_pick",
        format_func=lambda p: (
            f"{by_path[p].name} ({'shipped' if by_path[p].shipped else 'local'}) — "
            + (f"{by_path[p].test_accuracy}% test accuracy" if by_path[p].test_accuracy is not None else "accuracy n/a")
        ),
    )
    entry = by_path[picked]
    st.session_state["model_choice"] = {"dataset": ds, "model": arch, "checkpoint": entry.path, "name": entry.name}
    with st.expander("Training recipe"):
        st.json(entry.recipe)
    st.success(f"Selected **{entry.name}**: the other pages use this model.")
    link(UNLEARN_PAGE, "Next: unlearn some classes")

st.subheader("Train a new base model")
with st.form("train_form"):
    cols = st.columns(3)
    epochs = cols[0].number_input("Epochs", 0.05, 500.0, 5.0, help="Passes over the training set", key="tr_epochs")
    lr = cols[1].number_input("Learning rate", 1e-5, 5.0, 0.05, format="%.4g", help="Peak (cosine decay)", key="tr_lr")
    seed = cols[2].number_input("Seed", 0, 10**6, 0, key="tr_seed", help="Initialisation and batch order")
    if st.form_submit_button("Train"):
        params = {"dataset": ds, "model": arch, "epochs": float(epochs), "lr": float(lr), "seed": int(seed)}
        st.session_state["train_run"] = manager().submit("train", params, title=f"train {arch} on {ds}")


train_id = st.session_state.get("train_run")
if train_id and store().exists(train_id):
    run = store().get(train_id)
    if run.active:
        watch_jobs([train_id], "train")
    else:
        job_panel(train_id, "train")
        if run.done:
            st.success(f"Trained: {run.metrics.get('test_accuracy')}% test accuracy; it is now in the list above.")

st.subheader("Upload a checkpoint")
st.caption(
    "Two files: the weights `NAME.safetensors` and the sidecar `NAME.json` (architecture, classes, "
    f"normalisation), as written by OPC Lab, {MAX_UPLOAD_BYTES // 2**20} MiB at most. It is loaded and checked "
    "against the dataset, and its test accuracy is measured, before it is added to your local zoo; nothing is "
    "unpickled."
)
files = st.file_uploader(
    "Checkpoint files", type=["safetensors", "json"], accept_multiple_files=True, key="model_upload"
)
if files and st.button("Validate and add", key="model_upload_go"):
    try:
        name = install_checkpoint([(f.name, f.getvalue()) for f in files], ds, data=dataset(ds))
    except ValueError as exc:
        st.error(f"Refused: {exc}")
    else:
        st.session_state["upload_msg"] = f"Added **{name}** to the local zoo; pick it in the list above."
        st.rerun()
if "upload_msg" in st.session_state:
    st.success(st.session_state.pop("upload_msg"))
