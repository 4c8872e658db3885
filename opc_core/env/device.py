"""Device choice: CUDA if present, else MPS, else CPU; ``$OPC_LAB_DEVICE`` or an explicit argument overrides."""

from __future__ import annotations

import os

import torch


def default_device(override: str | torch.device | None = None) -> torch.device:
    """Return the device to compute on.

    Args:
        override: an explicit device ("cpu", "cuda", "cuda:1", "mps"); falls back to ``$OPC_LAB_DEVICE``.
    """
    choice = override if override is not None else os.environ.get("OPC_LAB_DEVICE") or None
    if choice is not None and str(choice) != "auto":
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device | None = None) -> str:
    """A human-readable name: the GPU's name, or "CPU (N threads)"."""
    device = device or default_device()
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a parameterless module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
