"""Pretrained checkpoints: safetensors weights plus a JSON sidecar; list, load, save and train.

Loading never unpickles: weights come from safetensors, metadata from JSON, and the architecture is rebuilt from the
registry by name. Shipped checkpoints live in ``assets/zoo``; ones trained or uploaded here in ``<home>/zoo``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from opc_core.data import ImageData, load_dataset
from opc_core.env import paths
from opc_core.env.device import default_device
from opc_core.models import MODELS, UnlearnableModel, create_model
from opc_core.train.inference import accuracy
from opc_core.train.loop import (
    Batches,
    LoopOptions,
    Monitor,
    OptimConfig,
    StepInfo,
    StopFlag,
    hp,
    run_loop,
    seed_everything,
)

log = logging.getLogger(__name__)
FORMAT = "opc-lab-checkpoint/1"
MAX_UPLOAD_BYTES = 200 * 2**20  # install_checkpoint refuses larger pairs


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: missing, corrupt, or not matching what it claims or what is expected."""


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


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are ordinary shareable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    _atomic_write(weights, save(tensors, metadata={"format": FORMAT, "arch": model.arch}))
    _atomic_write(stem.with_suffix(".json"), json.dumps(sidecar, indent=2, default=str).encode())
    return weights


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a checkpoint (given either file or the common stem)."""
    side = Path(path).with_suffix(".json")
    if not side.exists():
        raise CheckpointError(f"checkpoint sidecar {side.name} not found next to the weights (in {side.parent})")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"sidecar {side.name} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"sidecar {side.name} must hold a JSON object")
    for key in ("arch", "in_channels", "num_classes", "image_size"):
        if key not in meta:
            raise CheckpointError(f"sidecar {side.name} lacks the field {key!r}")
    return meta


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
        CheckpointError: missing or corrupt files, unknown architecture, mismatched tensors, or a checkpoint that
            does not fit the expected class count / architecture / channels.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    weights = Path(path).with_suffix(".safetensors")
    if not weights.exists():
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
        model = create_model(meta["arch"], int(meta["in_channels"]), int(meta["num_classes"]), int(meta["image_size"]))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"sidecar of {weights.stem} describes an impossible model: {exc}") from None
    _check_state(model, state, weights.name)
    model.load_state_dict(state)
    model.to(default_device(device)).eval()
    meta["path"] = str(weights)
    return model, meta


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
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


@dataclass(frozen=True)
class ZooEntry:
    name: str
    dataset: str
    model: str
    test_accuracy: float | None
    path: str
    shipped: bool
    recipe: dict

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_checkpoints(dataset: str | None = None, model: str | None = None) -> list[ZooEntry]:
    """Checkpoints in the shipped zoo and the local zoo, optionally filtered; unreadable sidecars are skipped."""
    out = []
    for folder, shipped in ((paths.SHIPPED_ZOO, True), (paths.local_zoo(), False)):
        for side in sorted(folder.glob("*.json")):
            weights = side.with_suffix(".safetensors")
            if not weights.exists():
                continue
            try:
                meta = read_sidecar(side)
            except CheckpointError as exc:
                log.warning("skipping %s: %s", side.name, exc)
                continue
            entry = ZooEntry(
                side.stem,
                meta.get("dataset", "?"),
                meta["arch"],
                meta.get("test_accuracy"),
                str(weights),
                shipped,
                meta.get("recipe", {}),
            )
            if (dataset is None or entry.dataset == dataset) and (model is None or entry.model == model):
                out.append(entry)
    return out


def find_checkpoint(dataset: str, model: str) -> ZooEntry | None:
    """The best-accuracy checkpoint for (dataset, model), shipped or local; None if there is none."""
    entries = list_checkpoints(dataset, model)
    return max(entries, key=lambda e: e.test_accuracy or 0.0) if entries else None


@dataclass(frozen=True)
class TrainConfig(OptimConfig):
    """Recipe for training a base model (and for the retrain baseline)."""

    epochs: float = hp(15.0, "Training epochs", 0.05, 500)
    batch_size: int = hp(128, "Mini-batch size", 8, 4096)
    lr: float = hp(0.05, "Peak learning rate (cosine decay to 0)", 1e-6, 10.0)


def fit_classifier(
    model: UnlearnableModel,
    data: ImageData,
    idx: torch.Tensor,
    cfg: OptimConfig,
    *,
    on_step=None,
    stop: StopFlag | None = None,
    monitor: Monitor | None = None,
    params=None,
):
    """Cross-entropy training of ``model`` in place on training images ``idx``; returns the LoopResult."""
    gen = seed_everything(cfg.seed)
    stream = Batches(data, idx, cfg.batch_size, augment_batches=cfg.augment, generator=gen)

    def loss_fn(m, batch, state):
        x, y = batch["train"]
        loss = nn.functional.cross_entropy(m(x), y)
        return loss, {"ce": loss.detach()}

    options = LoopOptions(on_step=on_step, stop=stop, monitor=monitor, params=params)
    return run_loop(model, loss_fn, {"train": stream}, cfg, options)


def train_base_model(
    dataset: str,
    arch: str,
    cfg: TrainConfig | None = None,
    *,
    device=None,
    on_step: Callable[[StepInfo], None] | None = None,
    stop: StopFlag | None = None,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
) -> tuple[UnlearnableModel, dict[str, Any]]:
    """Train ``arch`` on ``dataset`` from scratch and save it as a checkpoint (local zoo unless ``out``).

    Returns:
        The trained model and its sidecar metadata (with ``path``).
    """
    cfg = cfg or TrainConfig()
    dev = default_device(device)
    data = load_dataset(dataset, root=data_root, device=dev)
    seed_everything(cfg.seed)
    model = create_model(arch, data.in_channels, data.num_classes, data.image_size).to(dev)
    result = fit_classifier(model, data, torch.arange(len(data.train_y)), cfg, on_step=on_step, stop=stop)
    if result.stopped:
        raise InterruptedError(f"training stopped after {result.steps} of {result.total} steps")
    acc = accuracy(model, data, split="test")
    meta = {
        "dataset": dataset,
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
        "recipe": asdict(cfg),
        "seed": cfg.seed,
        "test_accuracy": round(acc, 2),
        "train_seconds": round(result.elapsed_s, 1),
        "device": str(dev),
    }
    stem = Path(out) if out else paths.local_zoo() / f"{dataset}__{arch}__s{cfg.seed}"
    if stem.suffix == "" and (stem.is_dir() or out and str(out).endswith(os.sep)):
        stem = stem / f"{dataset}__{arch}__s{cfg.seed}"
    weights = save_checkpoint(model, stem, meta)
    meta["path"] = str(weights)
    log.info("trained %s on %s: test accuracy %.2f%% in %.1fs", arch, dataset, acc, result.elapsed_s)
    return model, meta


def load_for(dataset: str, arch: str, checkpoint: str | Path | None = None, *, device=None, data_root=None):
    """The dataset and a pretrained model for it: an explicit checkpoint, else the zoo's best for (dataset, arch).

    Raises:
        CheckpointError: no checkpoint in the zoo, or the checkpoint does not fit the dataset.
    """
    dev = default_device(device)
    data = load_dataset(dataset, root=data_root, device=dev)
    if checkpoint is None:
        entry = find_checkpoint(dataset, arch)
        if entry is None:
            raise CheckpointError(
                f"no pretrained {arch} for {dataset} in the zoo; train one with "
                f"`python -m opc_core train --dataset {dataset} --model {arch}`"
            )
        checkpoint = entry.path
    model, meta = load_checkpoint(
        checkpoint, device=dev, expect_num_classes=data.num_classes, expect_in_channels=data.in_channels
    )
    if model.image_size != data.image_size:
        raise CheckpointError(f"checkpoint expects {model.image_size}px images, {dataset} has {data.image_size}px")
    return data, model, meta


def install_checkpoint(files: Sequence[tuple[str, bytes]], dataset_name: str, data: ImageData | None = None) -> str:
    """Validate a checkpoint given as file contents (a ``.safetensors`` and its ``.json`` sidecar, e.g. an upload)
    and copy it into the local zoo.

    The pair is written to a temporary folder and loaded with :func:`load_checkpoint` (never unpickled) against the
    dataset's class count, channels and image size; only a checkpoint that loads is copied. ``data``: the dataset
    if already loaded. Returns the checkpoint's name.

    Raises:
        ValueError: anything else, with a message saying what is wrong (CheckpointError is a ValueError).
    """
    import re
    import shutil

    by_ext: dict[str, list[tuple[str, bytes]]] = {}
    for name, content in files:
        by_ext.setdefault(Path(name).suffix.lower(), []).append((Path(name).name, content))
    odd = sorted(set(by_ext) - {".safetensors", ".json"})
    if odd or len(by_ext.get(".safetensors", [])) != 1 or len(by_ext.get(".json", [])) != 1:
        raise ValueError(
            "upload exactly two files: the weights NAME.safetensors and the sidecar NAME.json"
            + (f" (got unexpected {', '.join(odd)})" if odd else "")
        )
    (w_name, w_bytes), (j_name, j_bytes) = by_ext[".safetensors"][0], by_ext[".json"][0]
    stem = Path(w_name).stem
    if Path(j_name).stem != stem:
        raise ValueError(f"the two files must share one name: {w_name} and {j_name} differ")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", stem):
        raise ValueError(f"checkpoint name {stem!r} may hold only letters, digits, '_', '-' and '.'")
    if len(w_bytes) + len(j_bytes) > MAX_UPLOAD_BYTES:
        raise ValueError(f"checkpoint too large (limit {MAX_UPLOAD_BYTES // 2**20} MiB)")
    data = data if data is not None else load_dataset(dataset_name, device="cpu")
    with tempfile.TemporaryDirectory(prefix="opc-upload-") as tmp:
        for name, content in ((w_name, w_bytes), (j_name, j_bytes)):
            (Path(tmp) / name).write_bytes(content)
        model, meta = load_checkpoint(
            Path(tmp) / w_name, device="cpu", expect_num_classes=data.num_classes, expect_in_channels=data.in_channels
        )
        if model.image_size != data.image_size:
            raise ValueError(
                f"the checkpoint expects {model.image_size}px images; {dataset_name} has {data.image_size}px"
            )
        if meta.get("dataset") not in (None, dataset_name):
            raise ValueError(f"the checkpoint was trained on {meta['dataset']!r}, not {dataset_name!r}")
        if meta.get("dataset") is None:  # record which dataset it was validated against, so the zoo lists it there
            side = json.loads(j_bytes)
            (Path(tmp) / j_name).write_text(json.dumps({**side, "dataset": dataset_name}, indent=2))
        dest = paths.local_zoo()
        if (dest / w_name).exists() or (paths.SHIPPED_ZOO / w_name).exists():
            raise ValueError(f"a checkpoint named {stem!r} is already in the zoo; rename the files")
        for name in (j_name, w_name):  # sidecar first: the zoo lists a checkpoint only once its weights exist
            shutil.copyfile(Path(tmp) / name, dest / name)
    return stem
