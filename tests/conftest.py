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
    """A cnn_small trained briefly on digits (session-scoped: trained once)."""
    from opc_core.models import create_model
    from opc_core.training import OptimConfig
    from opc_core.zoo import fit_classifier

    torch.manual_seed(0)
    model = create_model("cnn_small", digits.in_channels, digits.num_classes, digits.image_size)
    fit_classifier(model, digits, torch.arange(len(digits.train_y)), OptimConfig(epochs=8, lr=0.05, batch_size=64))
    return model.eval()
