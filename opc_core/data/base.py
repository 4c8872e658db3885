"""Core data types and the dataset registry.

Every dataset is held as one :class:`ImageData`: uint8 image tensors ``(N, C, H, W)`` plus int64 labels, with the
per-channel mean/std of its training images. Datasets register a :class:`DatasetSpec` in :data:`DATASETS` (see
:mod:`opc_core.data.sources`); :func:`load_dataset` finds, reads and caches them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from opc_core.registry import Registry

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The project root: the parent of the ``opc_core`` package."""

ASSETS_DIR = PROJECT_ROOT / "assets" / "data"
"""Where the embedded data assets live."""

IMAGEFOLDER_ENV = "OPC_LAB_IMAGEFOLDER"
"""Environment variable naming a user's image folder (overrides ``<root>/imagefolder``)."""


class DatasetMissingError(FileNotFoundError):
    """A dataset's files are not on disk (and were not downloaded).

    The message names the folder(s) searched, every expected file, and how to get them.

    Attributes:
        name: The dataset name.
        folders: The folders that were searched.
        expected: Every file name the loader needs.
        missing: The file names that were not found.
    """

    def __init__(
        self,
        name: str,
        folders: Sequence[Path | str],
        expected: Sequence[str],
        missing: Sequence[str] | None = None,
        how: str | None = None,
    ) -> None:
        self.name = name
        self.folders = [Path(f) for f in folders]
        self.expected = list(expected)
        self.missing = list(expected if missing is None else missing)
        self.how = how
        where = " or ".join(str(f) for f in self.folders)
        if how is None:
            how = (
                f"To get them, run `python -m opc_core datasets --download {name}` on a machine with internet access "
                f"(it writes them under the data root), or copy the files into {self.folders[0]}."
            )
        msg = (
            f"Dataset {name!r} is not available: missing {', '.join(self.missing)} in {where}. "
            f"Expected files: {', '.join(self.expected)}. {how}"
        )
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.folders, self.expected, self.missing, self.how))


@dataclass(eq=False)
class ImageData:
    """One image-classification dataset, held in memory as uint8 tensors.

    Attributes:
        name: Registered dataset name.
        train_x: Training images, uint8 ``(N, C, H, W)``.
        train_y: Training labels, int64 ``(N,)``.
        test_x: Test images, uint8 ``(M, C, H, W)``.
        test_y: Test labels, int64 ``(M,)``.
        classes: Class names, length ``K``.
        mean: Per-channel mean of the training images on the ``[0, 1]`` scale.
        std: Per-channel standard deviation of the training images on the ``[0, 1]`` scale.
        natural: Natural photos (random horizontal flips are a sensible augmentation).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    natural: bool

    def __post_init__(self) -> None:
        for key in ("train", "test"):
            x, y = getattr(self, f"{key}_x"), getattr(self, f"{key}_y")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{key}_x must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if y.dim() != 1 or y.shape[0] != x.shape[0] or y.dtype.is_floating_point:
                raise ValueError(f"{key}_y must be integer ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
            if y.dtype != torch.int64:
                setattr(self, f"{key}_y", y.long())
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(f"train/test image shapes differ: {tuple(self.train_x.shape)} {tuple(self.test_x.shape)}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError("mean/std need one value per channel")
        self.classes = [str(c) for c in self.classes]
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        """Number of image channels ``C``."""
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        """Image height ``H`` (images are square)."""
        return int(self.train_x.shape[2])

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.train_x.device

    def to(self, device: torch.device | str | None) -> ImageData:
        """A new ``ImageData`` with every tensor moved to ``device`` (``None`` keeps the current one)."""
        if device is None:
            device = self.device
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
            classes=list(self.classes),
        )

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # mean, std: (C, 1, 1), broadcast against (..., C, H, W)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        return mean, std

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """Map uint8 images ``(..., C, H, W)`` to float32 ``(x / 255 - mean) / std`` on the input's device."""
        mean, std = self._stats(x_uint8)
        return (x_uint8.to(torch.float32) / 255.0 - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Invert :meth:`normalize`: float images ``(..., C, H, W)`` back to the ``[0, 1]`` scale (not clamped)."""
        mean, std = self._stats(x)
        return x.to(torch.float32) * std + mean

    def info(self) -> dict[str, Any]:
        """JSON-safe summary: name, sizes, classes, mean and std."""
        return {
            "name": self.name,
            "num_train": int(self.train_x.shape[0]),
            "num_test": int(self.test_x.shape[0]),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "natural": self.natural,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and read one dataset.

    Attributes:
        name: Registered name.
        description: One line for humans.
        source: ``"embedded"``, ``"sklearn"``, ``"local"`` (torchvision-format files under a root) or ``"folder"``.
        loader: ``loader(root, download) -> ImageData``; raises :class:`DatasetMissingError` when files are missing.
        expected_files: ``expected_files(root) -> list[Path]``: the files the loader needs under ``root`` (empty for
            embedded/sklearn data).
        natural: Natural photos (random flips are appropriate).
        locate: Optional ``locate(root) -> (folder, missing_names)``: where the files were found (or the first folder
            searched) and which are missing. Defaults to checking ``expected_files`` (each may also be ``.gz``).
    """

    name: str
    description: str
    source: str
    loader: Callable[..., ImageData]
    expected_files: Callable[[Path], list[Path]]
    natural: bool
    locate: Callable[[Path], tuple[Path, list[str]]] | None = None

    def find(self, root: Path) -> tuple[Path, list[str]]:
        """``(folder, missing file names)`` for this dataset under ``root``."""
        if self.locate is not None:
            return self.locate(root)
        files = self.expected_files(root)
        folder = files[0].parent if files else root
        return folder, [p.name for p in files if not file_present(p)]


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def file_present(path: Path) -> bool:
    """Whether ``path`` exists as a file, plain or gzipped (``path.gz``)."""
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


def locate_or_fetch(
    name: str,
    root: Path,
    download: bool,
    locate: Callable[[Path], tuple[Path, list[str]]],
    fetch: Callable[[Path], None] | None = None,
    *,
    expected: Sequence[str],
    folders: Sequence[Path] | None = None,
    how: str | None = None,
) -> Path:
    """The folder holding dataset ``name``'s files under ``root``, fetched first when missing and ``download`` asks.

    Args:
        locate: ``locate(root) -> (folder, missing file names)``.
        fetch: ``fetch(root)`` downloads the files (None: nothing can be downloaded).
        expected: every file name the loader needs, for the error message.
        folders: the folders searched, for the error message (default: the one ``locate`` names).
        how: how to get the files, for the error message (default: the download command).

    Raises:
        DatasetMissingError: naming the folders, every expected file, the missing ones and how to get them.
    """
    folder, missing = locate(root)
    if missing and download and fetch is not None:
        try:
            fetch(root)
        except Exception as exc:  # offline, a mirror down, a full disk: say so, and how to get the files instead
            cause = " ".join(f"{type(exc).__name__}: {exc}".split())
            how = f"Downloading them failed ({cause}); check the network connection, or copy the files into {folder}."
            raise DatasetMissingError(name, folders or [folder], expected, missing, how) from None
        folder, missing = locate(root)
    if missing:
        raise DatasetMissingError(name, folders or [folder], expected, missing, how)
    return folder


def data_root() -> Path:
    """The default data root.

    ``$OPC_LAB_DATA`` if set, else ``$OPC_LAB_HOME/data``, else ``<project>/.opc_lab/data``. Not created here.
    """
    env = os.environ.get("OPC_LAB_DATA")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("OPC_LAB_HOME")
    base = Path(home).expanduser() if home else PROJECT_ROOT / ".opc_lab"
    return base / "data"


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else data_root()


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images ``(N, C, H, W)`` on the ``[0, 1]`` scale.

    Accumulates in float64 over chunks of images so large datasets need no full float copy. A zero std becomes 1.
    """
    n, c = int(x.shape[0]), int(x.shape[1])
    if n == 0:
        return (0.0,) * c, (1.0,) * c
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, n, chunk):
        part = x[start : start + chunk].to(torch.float64) / 255.0  # (n_chunk, C, H, W)
        total += part.sum(dim=(0, 2, 3)).cpu()
        total_sq += part.square().sum(dim=(0, 2, 3)).cpu()
    count = n * x.shape[2] * x.shape[3]
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def make_image_data(
    name: str,
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray | torch.Tensor,
    test_x: np.ndarray | torch.Tensor,
    test_y: np.ndarray | torch.Tensor,
    classes: Sequence[str],
    natural: bool,
) -> ImageData:
    """Build an :class:`ImageData` from arrays (uint8 ``(N, C, H, W)`` images), computing mean/std from train."""
    tx = torch.as_tensor(np.ascontiguousarray(train_x), dtype=torch.uint8)
    vx = torch.as_tensor(np.ascontiguousarray(test_x), dtype=torch.uint8)
    ty = torch.as_tensor(np.asarray(train_y).astype(np.int64, copy=False))
    vy = torch.as_tensor(np.asarray(test_y).astype(np.int64, copy=False))
    k = len(classes)
    for key, y in (("train", ty), ("test", vy)):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            raise ValueError(f"{name}: {key} labels outside 0..{k - 1}")
    mean, std = channel_stats(tx)
    return ImageData(name, tx, ty, vx, vy, list(classes), mean, std, natural)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split of ``labels`` into sorted (train, test) index arrays.

    Each class's indices are permuted with ``numpy.random.default_rng(seed)`` and ``round(test_fraction * n)`` go to
    test (at least one, and at least one left for train, when the class has two or more samples).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    empty = np.zeros(0, dtype=np.int64)
    train = np.sort(np.concatenate(train_parts)) if train_parts else empty
    test = np.sort(np.concatenate(test_parts)) if test_parts else empty
    return train.astype(np.int64), test.astype(np.int64)


_CACHE: dict[tuple[str, str, str], ImageData] = {}
_CACHE_LOCK = threading.RLock()


def clear_dataset_cache() -> None:
    """Forget every dataset cached by :func:`load_dataset`."""
    with _CACHE_LOCK:
        _CACHE.clear()


def load_dataset(
    name: str,
    root: str | Path | None = None,
    device: torch.device | str | None = None,
    download: bool = False,
) -> ImageData:
    """Load a registered dataset.

    The CPU version is cached per ``(name, root)`` for the life of the process (embedded and scikit-learn data once
    per name); ``device`` gives a moved copy.

    Args:
        name: Registered dataset name (see :func:`list_datasets`).
        root: Data root; defaults to :func:`data_root`.
        device: Device for the returned tensors (default: CPU, the cached object itself; do not modify it in place).
        download: Fetch missing files with torchvision (needs internet).

    Returns:
        The dataset.

    Raises:
        KeyError: Unknown name (the message lists the valid ones).
        DatasetMissingError: The files are missing and ``download`` is False.
    """
    spec = DATASETS.get(name)
    root_path = _root(root)
    # embedded/sklearn data do not depend on the root; an image folder may come from the environment
    root_key = "" if spec.source in ("embedded", "sklearn") else str(root_path.resolve())
    key = (name, root_key, os.environ.get(IMAGEFOLDER_ENV, "") if spec.source == "folder" else "")
    with _CACHE_LOCK:
        data = _CACHE.get(key)
        if data is None:
            log.info("loading dataset %s from %s", name, root_path)
            data = spec.loader(root_path, download)
            _CACHE[key] = data
            log.info(
                "loaded %s: %d train, %d test, %d classes", name, len(data.train_y), len(data.test_y), data.num_classes
            )
    if device is not None and torch.device(device) != data.device:
        return data.to(device)
    return data


def dataset_status(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """Whether a dataset can be loaded without downloading.

    Returns:
        ``{"name", "description", "source", "natural", "available", "root", "folder", "missing"}`` where ``root`` is
        the data root, ``folder`` where the files are (or were searched for) and ``missing`` the missing file names.
    """
    spec = DATASETS.get(name)
    root_path = _root(root)
    folder, missing = spec.find(root_path)
    return {
        "name": spec.name,
        "description": spec.description,
        "source": spec.source,
        "natural": spec.natural,
        "available": not missing,
        "root": str(root_path),
        "folder": str(folder),
        "missing": list(missing),
    }


def list_datasets(root: str | Path | None = None) -> list[dict[str, Any]]:
    """:func:`dataset_status` for every registered dataset, in registration order."""
    return [dataset_status(name, root) for name in DATASETS.names()]
