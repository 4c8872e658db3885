"""Build the embedded Fashion-MNIST subset ``assets/data/fashion_mnist_small.npz``.

Reads the full Fashion-MNIST IDX files (default: the Debian package's ``/usr/share/datasets/fashion-mnist``), draws
a class-balanced subset with a fixed seed (1,000 train and 200 test images per class by default) keeping the original
order, and writes it with ``numpy.savez_compressed``. Arrays: ``train_x`` (N, 28, 28) uint8, ``train_y`` (N,) uint8,
``test_x`` (M, 28, 28) uint8, ``test_y`` (M,) uint8, plus ``train_source_idx``/``test_source_idx`` (uint16: positions
in the full files, for provenance).

Usage:
    python scripts/make_fashion_subset.py [--src DIR] [--out FILE] [--seed 0] [--train-per-class 1000]
                                          [--test-per-class 200]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = ROOT / "assets" / "data" / "fashion_mnist_small.npz"
MAX_BYTES = 10 * 1024 * 1024


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` samples of every class, drawn without replacement (classes in order)."""
    picks = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise SystemExit(f"class {c} has only {len(idx)} samples, need {per_class}")
        picks.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--src", type=Path, default=DEFAULT_SRC, help=f"folder of the IDX files (default {DEFAULT_SRC})"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: the repo asset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from opc_core.data.idx import IDX_FILES, find_file, read_idx

    paths = [find_file(args.src, name) for name in IDX_FILES]
    if any(p is None for p in paths):
        missing = [n for n, p in zip(IDX_FILES, paths, strict=True) if p is None]
        raise SystemExit(f"missing in {args.src}: {', '.join(missing)} (apt-get install dataset-fashion-mnist)")
    train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    print(f"read {len(train_y)} train / {len(test_y)} test images from {args.src}")

    # One generator for both draws: train first, then test.
    rng = np.random.default_rng(args.seed)
    train_idx = balanced_subset(train_y, args.train_per_class, rng)
    test_idx = balanced_subset(test_y, args.test_per_class, rng)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        train_x=train_x[train_idx].astype(np.uint8),
        train_y=train_y[train_idx].astype(np.uint8),
        test_x=test_x[test_idx].astype(np.uint8),
        test_y=test_y[test_idx].astype(np.uint8),
        train_source_idx=train_idx.astype(np.uint16),
        test_source_idx=test_idx.astype(np.uint16),
    )
    size = args.out.stat().st_size
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out}: {len(train_idx)} train / {len(test_idx)} test, {size / 1e6:.2f} MB, sha256 {digest}")
    if size > MAX_BYTES:
        args.out.unlink()
        raise SystemExit(f"{args.out} is {size} bytes, over the {MAX_BYTES}-byte limit; removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
