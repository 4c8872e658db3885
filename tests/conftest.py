"""Shared fixtures: an isolated OPC_LAB_HOME per test session, CPU only, small real data."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Isolate the run store and local zoo before any opc_core import reads the environment.
os.environ.setdefault("OPC_LAB_HOME", tempfile.mkdtemp(prefix="opc-lab-test-"))
os.environ["OPC_LAB_DEVICE"] = "cpu"
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits on the CPU."""
    from opc_core.data import load_dataset

    return load_dataset("digits", device="cpu")


@pytest.fixture(scope="session")
def digits_model(digits):
    """The shipped cnn_small pretrained on digits (98% test accuracy), on the CPU."""
    from opc_core.train.zoo import find_checkpoint, load_checkpoint

    model, _ = load_checkpoint(find_checkpoint("digits", "cnn_small").path, device="cpu")
    return model.eval()


@pytest.fixture
def store(tmp_path):
    """An empty run store in the test's own folder."""
    from opc_core.runs.store import RunStore

    return RunStore(tmp_path / "home")
