"""One checkpoint on disk: safetensors weights plus a JSON sidecar; save, read the sidecar, load and check.

Loading never unpickles: weights come from safetensors, metadata from JSON, and the architecture is rebuilt from the
registry by name. Everything read is checked before it is used (a sidecar's types and ranges, tensor shapes, finite
weights), so a bad file is refused with a :class:`CheckpointError` that says what is wrong instead of poisoning a run
or a page later.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from opc_core.env.device import default_device
from opc_core.models import MODELS, UnlearnableModel, create_model

FORMAT = "opc-lab-checkpoint/1"
MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few KiB; anything near this is not one
# sidecar field -> (what it must be, check); "required" fields are the ones the model is rebuilt from
_REQUIRED = {
    "arch": ("a string", lambda v: isinstance(v, str)),
    "in_channels": ("an integer in [1, 64]", lambda v: _int_in(v, 1, 64)),
    "num_classes": ("an integer in [2, 100000]", lambda v: _int_in(v, 2, 100_000)),
    "image_size": ("an integer in [1, 4096]", lambda v: _int_in(v, 1, 4096)),
}
_OPTIONAL = {
    "test_accuracy": ("a number in [0, 100] or null", lambda v: v is None or _number_in(v, 0.0, 100.0)),
    "dataset": ("a string", lambda v: isinstance(v, str)),
    "name": ("a string", lambda v: isinstance(v, str)),
    "parent": ("a string", lambda v: isinstance(v, str)),
    "recipe": ("a JSON object", lambda v: isinstance(v, dict)),
    "classes": ("a list", lambda v: isinstance(v, list)),
    "mean": ("a list of finite numbers", lambda v: _numbers(v)),
    "std": ("a list of finite numbers", lambda v: _numbers(v)),
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, corrupt, or not matching what it claims or what is expected."""


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _number_in(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_number_in(x, -1e6, 1e6) for x in v)


def library_versions() -> dict[str, str]:
    """Versions recorded in every sidecar and run."""
    import numpy

    from opc_core import __version__

    return {
        "opc_lab": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are ordinary shareable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sidecar_bytes(meta: dict[str, Any]) -> bytes:
    """A sidecar's JSON text (strict JSON: a NaN would make it unreadable elsewhere, so it is refused here)."""
    return json.dumps(meta, indent=2, default=str, allow_nan=False).encode()


def save_checkpoint(model: UnlearnableModel, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the weights' path.

    ``meta`` should hold at least dataset, classes, mean, std; architecture fields are filled in from the model.
    """
    from safetensors.torch import save

    stem = Path(path)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sidecar = {
        "format": FORMAT,
        "name": stem.name,
        "arch": model.arch,
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "image_size": model.image_size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": library_versions(),
        **meta,
    }
    weights = stem.with_suffix(".safetensors")
    atomic_write(weights, save(tensors, metadata={"format": FORMAT, "arch": model.arch}))
    atomic_write(stem.with_suffix(".json"), sidecar_bytes(sidecar))
    return weights


def parse_sidecar(text: bytes | str, name: str) -> dict[str, Any]:
    """A sidecar's content checked field by field (``name`` is the file's name, for the messages).

    Raises:
        CheckpointError: not JSON, nested absurdly deep, not an object, a required field missing, or a field of the
            wrong type or out of range (named, with what it must be).
    """
    if len(text) > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"sidecar {name} is {len(text)} bytes; a sidecar is a small JSON file (limit 1 MiB)")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"sidecar {name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(f"sidecar {name} is nested too deeply to be a checkpoint sidecar") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"sidecar {name} must hold a JSON object")
    for key in _REQUIRED:
        if key not in meta:
            raise CheckpointError(f"sidecar {name} lacks the field {key!r}")
    for key, (must, ok) in {**_REQUIRED, **_OPTIONAL}.items():
        if key in meta and not ok(meta[key]):
            raise CheckpointError(f"sidecar {name}: field {key!r} must be {must}, got {_show(meta[key])}")
    return meta


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The checked JSON sidecar of a checkpoint (given either file or the common stem); see :func:`parse_sidecar`."""
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        raise CheckpointError(f"checkpoint sidecar {side.name} not found next to the weights (in {side.parent})")
    if side.stat().st_size > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"sidecar {side.name} is {side.stat().st_size} bytes; a sidecar is a small JSON file")
    return parse_sidecar(side.read_bytes(), side.name)


def load_checkpoint(
    path: str | Path,
    *,
    device: str | torch.device | None = None,
    expect_num_classes: int | None = None,
    expect_arch: str | None = None,
    expect_in_channels: int | None = None,
) -> tuple[UnlearnableModel, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights, refusing anything that does not match.

    Raises:
        CheckpointError: missing or corrupt files, unknown architecture, mismatched or non-finite tensors, or a
            checkpoint that does not fit the expected class count / architecture / channels.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights = Path(path).with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights.name} not found in {weights.parent}")
    meta = read_sidecar(weights)
    if meta["arch"] not in MODELS:
        raise CheckpointError(f"checkpoint architecture {meta['arch']!r} is unknown; valid: {MODELS.names()}")
    checks = (
        ("architecture", expect_arch, meta["arch"]),
        ("class count", expect_num_classes, meta["num_classes"]),
        ("input channels", expect_in_channels, meta["in_channels"]),
    )
    for what, want, got in checks:
        if want is not None and want != got:
            raise CheckpointError(f"checkpoint {weights.stem}: {what} is {got}, expected {want}")
    try:
        state = load(weights.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise CheckpointError(f"{weights.name} is not a readable safetensors file: {exc}") from None
    try:
        model = create_model(meta["arch"], meta["in_channels"], meta["num_classes"], meta["image_size"])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"sidecar of {weights.stem} describes an impossible model: {exc}") from None
    check_state(model, state, weights.name)
    model.load_state_dict(state)
    model.to(default_device(device)).eval()
    meta["path"] = str(weights)
    return model, meta


def check_state(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Refuse a state dict that does not fit ``model`` (missing / extra keys, shapes) or holds NaN or infinity."""
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{name} does not match architecture {model.arch!r}: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for k, v in expected.items():
        if state[k].shape != v.shape:
            raise CheckpointError(
                f"{name}: tensor {k} has shape {tuple(state[k].shape)}, the architecture "
                f"expects {tuple(v.shape)} (wrong class count or input size?)"
            )
        if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all()):
            raise CheckpointError(f"{name}: tensor {k} holds NaN or infinite values; the weights are unusable")
