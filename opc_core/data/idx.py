"""MNIST and Fashion-MNIST from IDX files (torchvision layout ``<root>/<Folder>/raw/``, plain or ``.gz``)."""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import numpy as np

from opc_core.data.base import ImageData, locate_or_fetch, make_image_data

log = logging.getLogger(__name__)

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
"""File names of an IDX image dataset: train images/labels, test images/labels (each may end in ``.gz``)."""

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian package ``dataset-fashion-mnist`` puts the Fashion-MNIST files."""

FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))

# IDX type code -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain, or gzip when the name ends in ``.gz``).

    Args:
        path: The file.

    Returns:
        The array, shape from the header (e.g. ``(N, 28, 28)`` for images, ``(N,)`` for labels), native byte order.

    Raises:
        ValueError: Bad magic number, unknown type code, or a size that does not match the header (truncated file).
    """
    path = Path(path)
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip file ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes)")
    zero, code, ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number 0x{raw[:4].hex()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header (need {header} bytes, file has {len(raw)})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    need = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != need:
        kind = "truncated" if len(raw) < need else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {kind}: header says {dims} ({need} bytes), file has {len(raw)} bytes")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` if it exists, else ``folder/name.gz`` if that does, else None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _locate(folders: list[Path]) -> tuple[Path, list[str]]:
    """First folder holding all IDX files (with no missing), else the first folder and what it lacks."""
    for folder in folders:
        if all(find_file(folder, n) is not None for n in IDX_FILES):
            return folder, []
    first = folders[0]
    return first, [n for n in IDX_FILES if find_file(first, n) is None]


def mnist_dir(root: Path) -> Path:
    """``<root>/MNIST/raw``."""
    return root / "MNIST" / "raw"


def fashion_dir(root: Path) -> Path:
    """``<root>/FashionMNIST/raw``."""
    return root / "FashionMNIST" / "raw"


def mnist_expected(root: Path) -> list[Path]:
    """Files the ``mnist`` loader needs."""
    return [mnist_dir(root) / n for n in IDX_FILES]


def fashion_expected(root: Path) -> list[Path]:
    """Files the ``fashion_mnist`` loader needs (under the root; the Debian folder is a fallback)."""
    return [fashion_dir(root) / n for n in IDX_FILES]


def locate_mnist(root: Path) -> tuple[Path, list[str]]:
    """``(folder, missing names)`` for MNIST."""
    return _locate([mnist_dir(root)])


def locate_fashion(root: Path) -> tuple[Path, list[str]]:
    """``(folder, missing names)`` for Fashion-MNIST: the root's folder first, then the Debian package's."""
    return _locate([fashion_dir(root), DEBIAN_FASHION_DIR])


def _read_folder(name: str, folder: Path, classes: tuple[str, ...]) -> ImageData:
    arrays = [read_idx(find_file(folder, n)) for n in IDX_FILES]  # type: ignore[arg-type]
    train_x, train_y, test_x, test_y = arrays
    for key, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{name} in {folder}: {key} images {x.shape} and labels {y.shape} do not match")
    # (N, H, W) -> (N, 1, H, W)
    return make_image_data(
        name, train_x[:, None].astype(np.uint8), train_y, test_x[:, None].astype(np.uint8), test_y, classes, False
    )


def _download(tv_class: str, root: Path) -> None:
    from opc_core.env.compat import ensure_torchvision

    ensure_torchvision()
    import torchvision.datasets as tvd

    log.info("downloading %s into %s", tv_class, root)
    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(tvd, tv_class)
    cls(root=str(root), train=True, download=True)
    cls(root=str(root), train=False, download=True)


def load_mnist(root: Path, download: bool = False) -> ImageData:
    """Load MNIST from ``<root>/MNIST/raw`` (downloading with torchvision if asked)."""
    fetch = lambda r: _download("MNIST", r)  # noqa: E731
    folder = locate_or_fetch("mnist", root, download, locate_mnist, fetch, expected=IDX_FILES)
    return _read_folder("mnist", folder, DIGIT_CLASSES)


def load_fashion_mnist(root: Path, download: bool = False) -> ImageData:
    """Load Fashion-MNIST from ``<root>/FashionMNIST/raw`` or the Debian package's folder."""
    how = (
        "To get them, run `python -m opc_core datasets --download fashion_mnist` on a machine with internet "
        f"access, copy the files into {fashion_dir(root)}, or `apt-get install dataset-fashion-mnist` "
        f"(installs them in {DEBIAN_FASHION_DIR})."
    )
    fetch = lambda r: _download("FashionMNIST", r)  # noqa: E731
    folders = [fashion_dir(root), DEBIAN_FASHION_DIR]
    folder = locate_or_fetch(
        "fashion_mnist", root, download, locate_fashion, fetch, expected=IDX_FILES, folders=folders, how=how
    )
    return _read_folder("fashion_mnist", folder, FASHION_CLASSES)
