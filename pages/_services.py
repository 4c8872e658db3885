"""What every page reads from the server: the run store (with the shipped demo imported on first start) and job
manager, cached datasets and checkpoint models, and the model chosen on the Model page.

Everything is cached per server process (``st.cache_resource``); nothing loads a model at import time.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from opc_core.env import paths

MODEL_PAGE, UNLEARN_PAGE = "pages/model.py", "pages/unlearn.py"
FEATURES_PAGE, RECOVERY_PAGE = "pages/feature_space.py", "pages/recovery.py"
INVERSION_PAGE, COMPARE_PAGE = "pages/inversion.py", "pages/compare.py"
GLOSSARY_PAGE = "pages/glossary.py"
DEFAULT_DATASET, DEFAULT_MODEL = "fashion_mnist_small", "cnn_small"


@st.cache_resource(show_spinner=False)
def _services(home: str):
    from opc_core.jobs.manager import JobManager
    from opc_core.runs.store import RunStore

    store = RunStore(home)
    if os.environ.get("OPC_LAB_DEMO", "1") != "0":  # the shipped demo's runs, once per home (OPC_LAB_DEMO=0: none)
        from opc_core.workflows.demo import import_demo

        import_demo(store)
    # the idle warm worker stores the maps of finished runs, so the Feature space page shows them at once
    os.environ.setdefault("OPC_LAB_IDLE_MAPS", "1")
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


def current_model() -> dict[str, Any]:
    """``{"dataset", "model", "checkpoint", "name"}`` chosen on the Model page (default: the shipped embedded one).

    Kept in session state, so every page of one browser session works on the same model.
    """
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
