"""CIFAR-10 and CIFAR-100 from the python-pickle batch files, read with a restricted unpickler.

The batch files are pickles of dicts holding numpy arrays. Plain ``pickle.load`` would run any callable a crafted file
names; :class:`RestrictedUnpickler` resolves only the few globals numpy arrays need and refuses everything else.
"""

from __future__ import annotations

import importlib
import io
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from opc_core.data.base import ImageData, locate_or_fetch, make_image_data

log = logging.getLogger(__name__)

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
CIFAR100_DIR = "cifar-100-python"
CIFAR100_FILES = ("train", "test", "meta")

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def _multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals needed to rebuild numpy arrays.

    Allowed: ``numpy.core.multiarray._reconstruct`` / ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``,
    ``numpy.dtype`` and ``_codecs.encode``. Any other global raises :class:`pickle.UnpicklingError`.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowed global; refuse the rest."""
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy array data is allowed in a dataset file"
            )
        if name == "_reconstruct":
            return _multiarray()._reconstruct
        if module == "_codecs":
            import _codecs

            return _codecs.encode
        return getattr(np, name)


def restricted_load(path: str | Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (``encoding="bytes"`` for Python 2 pickles).

    Raises:
        ValueError: naming the file, for a refused global and for any garbage, empty or truncated file.
    """
    try:
        data = Path(path).read_bytes()
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # garbage fails inside the unpickler in many ways (EOFError, KeyError, ...)
        raise ValueError(f"{path}: not a readable dataset batch file ({type(exc).__name__}: {exc})") from None


def _str_keys(obj: Any, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64 of one batch file."""
    d = _str_keys(restricted_load(path), path)
    if "data" not in d or label_key not in d:
        raise ValueError(f"{path}: missing key 'data' or {label_key!r} (has {sorted(d)})")
    try:
        x = np.asarray(d["data"], dtype=np.uint8)  # (N, 3072)
        y = np.asarray(d[label_key], dtype=np.int64).reshape(-1)  # (N,)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{path}: 'data' / {label_key!r} are not arrays of images and labels ({exc})") from None
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{path}: data {x.shape} / labels {y.shape} are not (N, 3072) / (N,)")
    return x.reshape(-1, 3, 32, 32), y


def _names(path: Path, key: str) -> list[str]:
    d = _str_keys(restricted_load(path), path)
    if key not in d:
        raise ValueError(f"{path}: missing key {key!r} (has {sorted(d)})")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in d[key]]
    except (TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {key!r} is not a list of class names ({exc})") from None


def cifar10_expected(root: Path) -> list[Path]:
    """Files the ``cifar10`` loader needs."""
    return [root / CIFAR10_DIR / n for n in CIFAR10_FILES]


def cifar100_expected(root: Path) -> list[Path]:
    """Files the ``cifar100`` loader needs."""
    return [root / CIFAR100_DIR / n for n in CIFAR100_FILES]


def _missing(files: list[Path]) -> list[str]:
    return [p.name for p in files if not p.is_file()]


def locate_cifar10(root: Path) -> tuple[Path, list[str]]:
    """``(folder, missing names)`` for CIFAR-10."""
    return root / CIFAR10_DIR, _missing(cifar10_expected(root))


def locate_cifar100(root: Path) -> tuple[Path, list[str]]:
    """``(folder, missing names)`` for CIFAR-100."""
    return root / CIFAR100_DIR, _missing(cifar100_expected(root))


def _download(tv_class: str, root: Path) -> None:
    from opc_core.env.compat import ensure_torchvision

    ensure_torchvision()
    import torchvision.datasets as tvd

    log.info("downloading %s into %s", tv_class, root)
    root.mkdir(parents=True, exist_ok=True)
    getattr(tvd, tv_class)(root=str(root), train=True, download=True)


def load_cifar10(root: Path, download: bool = False) -> ImageData:
    """Load CIFAR-10 from ``<root>/cifar-10-batches-py``."""
    fetch = lambda r: _download("CIFAR10", r)  # noqa: E731
    folder = locate_or_fetch("cifar10", root, download, locate_cifar10, fetch, expected=CIFAR10_FILES)
    parts = [_batch(folder / n, "labels") for n in CIFAR10_FILES[:5]]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _batch(folder / "test_batch", "labels")
    classes = _names(folder / "batches.meta", "label_names")
    return make_image_data("cifar10", train_x, train_y, test_x, test_y, classes, True)


def load_cifar100(root: Path, download: bool = False) -> ImageData:
    """Load CIFAR-100 (fine labels) from ``<root>/cifar-100-python``."""
    fetch = lambda r: _download("CIFAR100", r)  # noqa: E731
    folder = locate_or_fetch("cifar100", root, download, locate_cifar100, fetch, expected=CIFAR100_FILES)
    train_x, train_y = _batch(folder / "train", "fine_labels")
    test_x, test_y = _batch(folder / "test", "fine_labels")
    classes = _names(folder / "meta", "fine_label_names")
    return make_image_data("cifar100", train_x, train_y, test_x, test_y, classes, True)
