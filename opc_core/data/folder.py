"""A user's folder of images, one sub-folder per class (optionally under ``train/`` and ``test/``)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from opc_core.data.base import IMAGEFOLDER_ENV, ImageData, locate_or_fetch, make_image_data, stratified_split

log = logging.getLogger(__name__)

IMAGE_SIZE = 32
"""Every image is resized to ``IMAGE_SIZE x IMAGE_SIZE``."""

TEST_FRACTION = 0.2
"""Per-class test share when the folder has no ``train/``/``test/`` split."""

SPLIT_SEED = 0
MAX_PIXELS = 4096 * 4096
"""Larger images are skipped (a decompression bomb would need gigabytes; a photo needs far fewer pixels)."""
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
EXPECTED = "<class name>/<image files>"
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def imagefolder_dir(root: Path) -> Path:
    """The image folder: ``$OPC_LAB_IMAGEFOLDER`` if set, else ``<root>/imagefolder``."""
    env = os.environ.get(IMAGEFOLDER_ENV)
    return Path(env).expanduser() if env else root / "imagefolder"


def imagefolder_expected(root: Path) -> list[Path]:
    """The folder the ``imagefolder`` loader needs (its contents are one sub-folder of images per class)."""
    return [imagefolder_dir(root)]


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_split(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def _has_image(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def locate_imagefolder(root: Path) -> tuple[Path, list[str]]:
    """``(folder, missing)``: missing is empty once two or more class sub-folders hold images and none is empty.

    An empty class folder or a single class is reported here (so the dataset is not listed as available) rather
    than dropped silently or failing later: a classifier needs two classes, and a class without images is a mistake.
    """
    folder = imagefolder_dir(root)
    base = folder / "train" if _has_split(folder) else folder
    dirs = _class_dirs(base)
    full = [d.name for d in dirs if _has_image(d)]
    empty = [d.name for d in dirs if d.name not in full]
    if not full:
        return folder, [EXPECTED]
    if empty:
        return folder, [f"images in the empty class folder(s) {', '.join(empty)}"]
    if len(full) < 2:
        return folder, [f"a second class folder (a classifier needs two classes; only {full[0]!r} holds images)"]
    return folder, []


def _collect(base: Path, classes: list[str] | None) -> tuple[list[str], list[Path], list[int]]:
    """Class names, image paths and labels under ``base`` (``classes`` fixes the names and their order)."""
    found = {d.name: _images(d) for d in _class_dirs(base)}
    found = {k: v for k, v in found.items() if v}
    if classes is None:
        classes = sorted(found)
    else:
        extra = sorted(set(found) - set(classes))
        if extra:
            raise ValueError(f"{base}: classes {extra} have no training images (train classes: {classes})")
    paths, labels = [], []
    for label, name in enumerate(classes):
        for p in found.get(name, []):
            paths.append(p)
            labels.append(label)
    return classes, paths, labels


def _read_images(paths: list[Path], labels: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Read and resize images; unreadable files are skipped with a warning.

    Returns:
        Images uint8 ``(N, C, IMAGE_SIZE, IMAGE_SIZE)``, labels int64 ``(N,)``, the positions ``(N,)`` of the kept
        files in ``paths``, and the PIL mode used (``"L"`` if every image is grayscale, else ``"RGB"``).
    """
    from PIL import Image, UnidentifiedImageError

    modes: list[str | None] = []
    for p in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
                with Image.open(p) as img:  # reads the header only
                    if img.width * img.height > MAX_PIXELS:
                        raise OSError(f"{img.width}x{img.height} pixels, over the limit of {MAX_PIXELS}")
                    modes.append(img.mode)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
            log.warning("skipping unreadable image %s (%s)", p, exc)
            modes.append(None)
    readable = [m for m in modes if m is not None]
    mode = "L" if readable and all(m in _GRAY_MODES for m in readable) else "RGB"
    arrays, kept = [], []
    for i, (p, m) in enumerate(zip(paths, modes, strict=True)):
        if m is None:
            continue
        try:
            with Image.open(p) as img:
                a = np.asarray(img.convert(mode).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR))
        except (UnidentifiedImageError, OSError) as exc:
            log.warning("skipping unreadable image %s (%s)", p, exc)
            continue
        arrays.append(a.astype(np.uint8)[None] if a.ndim == 2 else a.astype(np.uint8).transpose(2, 0, 1))  # (C, H, W)
        kept.append(i)
    channels = 1 if mode == "L" else 3
    x = np.stack(arrays) if arrays else np.zeros((0, channels, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    kept_idx = np.asarray(kept, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)[kept_idx] if len(kept_idx) else np.zeros(0, dtype=np.int64)
    return x, y, kept_idx, mode


def load_imagefolder(root: Path, download: bool = False) -> ImageData:
    """Load a folder of class sub-folders, resized to ``IMAGE_SIZE`` (``download`` is ignored: nothing to fetch).

    With ``train/`` and ``test/`` sub-folders those are used; otherwise each class is split 80/20 with seed 0.
    """
    how = (
        f"Put one sub-folder of images per class in {imagefolder_dir(root)} (optionally under train/ and test/), or "
        f"point ${IMAGEFOLDER_ENV} at such a folder. There is nothing to download."
    )
    folder = locate_or_fetch("imagefolder", root, download, locate_imagefolder, expected=[EXPECTED], how=how)
    if _has_split(folder):
        classes, train_paths, train_labels = _collect(folder / "train", None)
        _, test_paths, test_labels = _collect(folder / "test", classes)
        # one read of both parts, so that train and test share one mode (L or RGB)
        x, y, kept, mode = _read_images(train_paths + test_paths, train_labels + test_labels)
        is_train = kept < len(train_paths)  # (N,)
        train_x, train_y, test_x, test_y = x[is_train], y[is_train], x[~is_train], y[~is_train]
    else:
        classes, paths, labels = _collect(folder, None)
        x, y, _, mode = _read_images(paths, labels)
        train_idx, test_idx = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
        train_x, train_y, test_x, test_y = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    if len(train_y) == 0:
        raise ValueError(f"{folder}: no readable training images")
    counts = np.bincount(train_y, minlength=len(classes))
    if (counts == 0).any():
        lost = [c for c, n in zip(classes, counts, strict=True) if n == 0]
        raise ValueError(f"{folder}: class folder(s) {', '.join(lost)} hold no readable training images")
    log.info(
        "imagefolder %s: %d classes, %d train, %d test, mode %s", folder, len(classes), len(train_y), len(test_y), mode
    )
    return make_image_data("imagefolder", train_x, train_y, test_x, test_y, classes, True)
