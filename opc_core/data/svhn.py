"""SVHN (cropped digits) from the ``*_32x32.mat`` files under ``<root>/svhn``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from opc_core.data.base import ImageData, locate_or_fetch, make_image_data

log = logging.getLogger(__name__)

SVHN_DIR = "svhn"
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
SVHN_CLASSES = tuple(str(i) for i in range(10))


def svhn_expected(root: Path) -> list[Path]:
    """Files the ``svhn`` loader needs."""
    return [root / SVHN_DIR / n for n in SVHN_FILES]


def locate_svhn(root: Path) -> tuple[Path, list[str]]:
    """``(folder, missing names)`` for SVHN."""
    return root / SVHN_DIR, [p.name for p in svhn_expected(root) if not p.is_file()]


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN ``.mat`` file.

    Returns:
        Images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)`` with the file's label 10 mapped to digit 0.
    """
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except (ValueError, OSError, TypeError) as exc:
        raise ValueError(f"{path}: cannot read as a MATLAB file ({exc})") from exc
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables 'X' and 'y'")
    x = np.asarray(mat["X"])  # (H, W, C, N)
    y = np.asarray(mat["y"]).astype(np.int64).reshape(-1)  # (N,)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise ValueError(f"{path}: X {x.shape} / y {y.shape} are not (H, W, 3, N) / (N, 1)")
    y[y == 10] = 0
    return np.transpose(x, (3, 2, 0, 1)).astype(np.uint8), y  # (N, C, H, W)


def _download(root: Path) -> None:
    from opc_core.env.compat import ensure_torchvision

    ensure_torchvision()
    import torchvision.datasets as tvd

    folder = root / SVHN_DIR
    log.info("downloading SVHN into %s", folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        tvd.SVHN(root=str(folder), split=split, download=True)


def load_svhn(root: Path, download: bool = False) -> ImageData:
    """Load SVHN from ``<root>/svhn`` (downloading with torchvision if asked)."""
    folder = locate_or_fetch("svhn", root, download, locate_svhn, lambda r: _download(r), expected=SVHN_FILES)
    train_x, train_y = read_svhn_mat(folder / SVHN_FILES[0])
    test_x, test_y = read_svhn_mat(folder / SVHN_FILES[1])
    return make_image_data("svhn", train_x, train_y, test_x, test_y, SVHN_CLASSES, False)
