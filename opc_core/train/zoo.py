"""The checkpoint zoo: list and find checkpoints, train a base model into it, install an uploaded one.

Shipped checkpoints live in ``assets/zoo``; ones trained or uploaded here in ``<home>/zoo``. One file pair is written,
read and checked by :mod:`opc_core.train.checkpoint`. A zoo entry that cannot be read is skipped and named
(:func:`unreadable_checkpoints`), never allowed to break a listing; an installed checkpoint's accuracy is measured
here, never taken from its sidecar; and training never writes over an existing checkpoint.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from opc_core.config import build_config, validate_config
from opc_core.data import ImageData, load_dataset
from opc_core.env import paths
from opc_core.env.device import default_device
from opc_core.env.jsonable import to_jsonable
from opc_core.models import UnlearnableModel, create_model
from opc_core.train.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    parse_sidecar,
    read_sidecar,
    save_checkpoint,
    sidecar_bytes,
)
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
MAX_UPLOAD_BYTES = 200 * 2**20  # install_checkpoint refuses larger pairs
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}"  # a checkpoint name: no path, no odd characters


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


def _scan() -> Iterator[tuple[Path, bool, dict[str, Any] | str]]:
    """Every zoo entry with weights: (sidecar path, shipped, its checked sidecar or why it cannot be read)."""
    for folder, shipped in ((paths.SHIPPED_ZOO, True), (paths.local_zoo(), False)):
        for side in sorted(folder.glob("*.json")):
            if not side.with_suffix(".safetensors").exists():
                continue  # a sidecar without weights: not (yet) a checkpoint
            try:
                yield side, shipped, read_sidecar(side)
            except (CheckpointError, OSError) as exc:
                yield side, shipped, str(exc)


def list_checkpoints(dataset: str | None = None, model: str | None = None) -> list[ZooEntry]:
    """Checkpoints in the shipped zoo and the local zoo, optionally filtered.

    An entry whose sidecar is unreadable or wrong is skipped (logged; :func:`unreadable_checkpoints` names it), so one
    bad file never breaks the listing, the pages or the default model.
    """
    out = []
    for side, shipped, meta in _scan():
        if isinstance(meta, str):
            log.warning("skipping %s: %s", side.name, meta)
            continue
        entry = ZooEntry(
            side.stem,
            str(meta.get("dataset", "?")),
            meta["arch"],
            meta.get("test_accuracy"),
            str(side.with_suffix(".safetensors")),
            shipped,
            meta.get("recipe", {}),
        )
        if (dataset is None or entry.dataset == dataset) and (model is None or entry.model == model):
            out.append(entry)
    return out


def unreadable_checkpoints() -> dict[str, str]:
    """``{file name: why}`` for every zoo entry that :func:`list_checkpoints` skips (for a page to name them)."""
    return {side.name: meta for side, _, meta in _scan() if isinstance(meta, str)}


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


def train_config(params: Any) -> TrainConfig:
    """The recipe of a train run's parameters (a ``TrainParams``): the defaults under its epochs, lr, batch size and
    seed, checked like every config (a value out of range or not finite is refused naming the key)."""
    over = {k: getattr(params, k) for k in ("epochs", "lr", "batch_size") if getattr(params, k) is not None}
    return build_config(TrainConfig, overrides={**over, "seed": params.seed}, owner="training")


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


def _taken(stem: Path) -> bool:
    return stem.with_suffix(".safetensors").exists() or stem.with_suffix(".json").exists()


def train_destination(dataset: str, arch: str, seed: int, out: str | Path | None = None) -> Path:
    """The stem a trained checkpoint is saved under; never that of an existing checkpoint.

    ``out`` (a stem, or a folder) that already holds a checkpoint is refused; the zoo's default name
    ``<dataset>__<arch>__s<seed>`` gets the first free suffix ``-2``, ``-3``, ... when a local or shipped checkpoint
    has it (:func:`train_base_model` says so).

    Raises:
        ValueError: ``out`` names an existing checkpoint.
    """
    default = f"{dataset}__{arch}__s{seed}"
    if out:
        stem = Path(out)
        if stem.is_dir() or str(out).endswith(("/", "\\")):
            stem = stem / default
        elif stem.suffix in (".safetensors", ".json"):
            stem = stem.with_suffix("")
        if _taken(stem):
            raise ValueError(f"{stem}.safetensors already exists; choose another --out or delete that checkpoint")
        return stem
    stem, n = paths.local_zoo() / default, 1
    while _taken(stem) or _taken(paths.SHIPPED_ZOO / stem.name):
        n += 1
        stem = paths.local_zoo() / f"{default}-{n}"
    return stem


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
    """Train ``arch`` on ``dataset`` from scratch and save it as a checkpoint (see :func:`train_destination`).

    Returns:
        The trained model and its sidecar metadata (with ``path``).
    """
    cfg = cfg or TrainConfig()
    validate_config(cfg)
    stem = train_destination(dataset, arch, cfg.seed, out)
    if not out and stem.name != f"{dataset}__{arch}__s{cfg.seed}":
        log.warning("a checkpoint of that name is in the zoo; this one is saved as %s (none is overwritten)", stem.name)
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


def check_upload_size(nbytes: int) -> None:
    """Refuse a checkpoint pair of more than :data:`MAX_UPLOAD_BYTES` (checked before a file is read)."""
    if nbytes > MAX_UPLOAD_BYTES:
        raise ValueError(f"checkpoint too large: {nbytes / 2**20:.1f} MiB (limit {MAX_UPLOAD_BYTES // 2**20} MiB)")


def _pair(files: Sequence[tuple[str, bytes]]) -> tuple[str, bytes, bytes]:
    """(name, weights, sidecar) of an uploaded pair NAME.safetensors + NAME.json (extensions in any case)."""
    by_ext: dict[str, list[tuple[str, bytes]]] = {}
    for name, content in files:
        by_ext.setdefault(Path(name).suffix.lower(), []).append((Path(name).name, content))
    odd = sorted(set(by_ext) - {".safetensors", ".json"})
    limit = f"{MAX_UPLOAD_BYTES // 2**20} MiB"
    if not by_ext.get(".safetensors") and not odd and len(by_ext.get(".json", [])) == 1:
        raise ValueError(
            f"the weights {Path(by_ext['.json'][0][0]).stem}.safetensors are missing: upload both files "
            f"(a file over the {limit} limit is not accepted)"
        )
    if odd or len(by_ext.get(".safetensors", [])) != 1 or len(by_ext.get(".json", [])) != 1:
        raise ValueError(
            f"upload exactly two files: the weights NAME.safetensors and the sidecar NAME.json, {limit} at most"
            + (f" (got unexpected {', '.join(odd)})" if odd else "")
        )
    (w_name, w_bytes), (j_name, j_bytes) = by_ext[".safetensors"][0], by_ext[".json"][0]
    stem = Path(w_name).stem
    if Path(j_name).stem != stem:
        raise ValueError(f"the two files must share one name: {w_name} and {j_name} differ")
    if not re.fullmatch(NAME_PATTERN, stem):
        raise ValueError(f"checkpoint name {stem!r} may hold only letters, digits, '_', '-' and '.'")
    check_upload_size(len(w_bytes) + len(j_bytes))
    return stem, w_bytes, j_bytes


def install_checkpoint(files: Sequence[tuple[str, bytes]], dataset_name: str, data: ImageData | None = None) -> str:
    """Validate a checkpoint given as file contents (a ``.safetensors`` and its ``.json`` sidecar, e.g. an upload)
    and add it to the local zoo with its test accuracy measured here.

    The sidecar is checked, the pair is loaded with :func:`load_checkpoint` (never unpickled) against the dataset's
    class count, channels and image size, and the model's accuracy on the dataset's test split replaces whatever the
    sidecar claimed. ``data``: the dataset if already loaded. Returns the checkpoint's name.

    Raises:
        ValueError: anything wrong, with a message saying what (CheckpointError is a ValueError).
    """
    stem, w_bytes, j_bytes = _pair(files)
    side = parse_sidecar(j_bytes, f"{stem}.json")
    data = data if data is not None else load_dataset(dataset_name, device="cpu")
    with tempfile.TemporaryDirectory(prefix="opc-upload-") as tmp:
        for suffix, content in ((".safetensors", w_bytes), (".json", j_bytes)):
            (Path(tmp) / stem).with_suffix(suffix).write_bytes(content)
        model, _ = load_checkpoint(
            Path(tmp) / f"{stem}.safetensors",
            device="cpu",
            expect_num_classes=data.num_classes,
            expect_in_channels=data.in_channels,
        )
    if model.image_size != data.image_size:
        raise ValueError(f"the checkpoint expects {model.image_size}px images; {dataset_name} has {data.image_size}px")
    if side.get("dataset") not in (None, dataset_name):
        raise ValueError(f"the checkpoint was trained on {side['dataset']!r}, not {dataset_name!r}")
    dest = paths.local_zoo() / stem
    if _taken(dest) or _taken(paths.SHIPPED_ZOO / stem):
        raise ValueError(f"a checkpoint named {stem!r} is already in the zoo; rename the files")
    measured = accuracy(model, data.to("cpu"), split="test")
    side = to_jsonable({**side, "name": stem, "dataset": dataset_name, "test_accuracy": round(measured, 2)})
    side["test_accuracy_source"] = "measured on install (test split)"
    atomic_write(dest.with_suffix(".json"), sidecar_bytes(side))  # listed only once its weights exist
    atomic_write(dest.with_suffix(".safetensors"), w_bytes)
    log.info("installed %s: %.2f%% test accuracy on %s", stem, measured, dataset_name)
    return stem
