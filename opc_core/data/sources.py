"""The built-in datasets: scikit-learn digits, the embedded Fashion-MNIST subset, and registration of all eight.

Registration order (the order :func:`opc_core.data.list_datasets` reports): ``digits``, ``fashion_mnist_small``,
``fashion_mnist``, ``mnist``, ``cifar10``, ``cifar100``, ``svhn``, ``imagefolder``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from opc_core.data.base import (
    ASSETS_DIR,
    DATASETS,
    DatasetSpec,
    ImageData,
    locate_or_fetch,
    make_image_data,
    stratified_split,
)
from opc_core.data.cifar import (
    cifar10_expected,
    cifar100_expected,
    load_cifar10,
    load_cifar100,
    locate_cifar10,
    locate_cifar100,
)
from opc_core.data.folder import imagefolder_expected, load_imagefolder, locate_imagefolder
from opc_core.data.idx import (
    FASHION_CLASSES,
    fashion_expected,
    load_fashion_mnist,
    load_mnist,
    locate_fashion,
    locate_mnist,
    mnist_expected,
)
from opc_core.data.svhn import load_svhn, locate_svhn, svhn_expected

log = logging.getLogger(__name__)

FASHION_SMALL_FILE = ASSETS_DIR / "fashion_mnist_small.npz"
"""The embedded class-balanced Fashion-MNIST subset (see ``assets/data/README.md``)."""

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def load_digits_data(root: Path | None = None, download: bool = False) -> ImageData:
    """scikit-learn's 8x8 digits (1,797 images), values 0..16 scaled to uint8, split 80/20 per class with seed 0.

    ``root`` and ``download`` are ignored (the data ship with scikit-learn).
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), values 0..16
    x = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)  # (1797,)
    train_idx, test_idx = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    classes = [str(i) for i in range(10)]
    return make_image_data("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], classes, False)


def locate_fashion_small(root: Path) -> tuple[Path, list[str]]:
    """``(assets folder, missing)`` for the embedded subset (independent of ``root``)."""
    return ASSETS_DIR, [] if FASHION_SMALL_FILE.is_file() else [FASHION_SMALL_FILE.name]


def load_fashion_small(root: Path | None = None, download: bool = False) -> ImageData:
    """The embedded subset: 1,000 train and 200 test Fashion-MNIST images per class (``root`` is ignored)."""
    how = "Regenerate it with `python scripts/make_fashion_subset.py` (needs the full Fashion-MNIST IDX files)."
    locate_or_fetch(
        "fashion_mnist_small", root, download, locate_fashion_small, expected=[FASHION_SMALL_FILE.name], how=how
    )
    with np.load(FASHION_SMALL_FILE, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    # (N, 28, 28) -> (N, 1, 28, 28)
    return make_image_data(
        "fashion_mnist_small",
        arrays["train_x"][:, None],
        arrays["train_y"],
        arrays["test_x"][:, None],
        arrays["test_y"],
        FASHION_CLASSES,
        False,
    )


def _none(root: Path) -> list[Path]:
    return []


def _always(root: Path) -> tuple[Path, list[str]]:
    return root, []


_SPECS = (
    DatasetSpec(
        "digits",
        "scikit-learn digits: 1,797 real 8x8 grayscale handwritten digits, 10 classes (ships with scikit-learn)",
        "sklearn",
        load_digits_data,
        _none,
        False,
        _always,
    ),
    DatasetSpec(
        "fashion_mnist_small",
        "Fashion-MNIST subset embedded in the repo: 10,000 train / 2,000 test 28x28 grayscale, 10 classes",
        "embedded",
        load_fashion_small,
        _none,
        False,
        locate_fashion_small,
    ),
    DatasetSpec(
        "fashion_mnist",
        "Fashion-MNIST: 60,000 train / 10,000 test 28x28 grayscale clothing images, 10 classes",
        "local",
        load_fashion_mnist,
        fashion_expected,
        False,
        locate_fashion,
    ),
    DatasetSpec(
        "mnist",
        "MNIST: 60,000 train / 10,000 test 28x28 grayscale handwritten digits, 10 classes",
        "local",
        load_mnist,
        mnist_expected,
        False,
        locate_mnist,
    ),
    DatasetSpec(
        "cifar10",
        "CIFAR-10: 50,000 train / 10,000 test 32x32 colour photos, 10 classes",
        "local",
        load_cifar10,
        cifar10_expected,
        True,
        locate_cifar10,
    ),
    DatasetSpec(
        "cifar100",
        "CIFAR-100: 50,000 train / 10,000 test 32x32 colour photos, 100 fine classes",
        "local",
        load_cifar100,
        cifar100_expected,
        True,
        locate_cifar100,
    ),
    DatasetSpec(
        "svhn",
        "SVHN cropped digits: 73,257 train / 26,032 test 32x32 colour house-number digits, 10 classes",
        "local",
        load_svhn,
        svhn_expected,
        False,
        locate_svhn,
    ),
    DatasetSpec(
        "imagefolder",
        "Your own images: one sub-folder per class (optionally under train/ and test/), resized to 32x32",
        "folder",
        load_imagefolder,
        imagefolder_expected,
        True,
        locate_imagefolder,
    ),
)

for _spec in _SPECS:
    if _spec.name not in DATASETS:
        DATASETS.add(_spec.name, _spec)
