"""Benchmark: UMAP fit and transform of 5,000 real feature vectors, after the first (JIT-compiling) fit.

Features: penultimate features of the shipped cnn_small on fashion_mnist_small training images (5,000 fitted, the
same count transformed from the test split and the rest of train).

    python scripts/bench_umap.py [--n 5000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.embedding.projection import EmbedConfig, embed  # noqa: E402
from opc_core.train.inference import features_and_logits  # noqa: E402
from opc_core.train.zoo import load_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    data, model, _ = load_for("fashion_mnist_small", "cnn_small", device="cpu")
    fit = features_and_logits(model, data, torch.arange(args.n))[0].numpy()
    other = features_and_logits(model, data, torch.arange(args.n, 2 * args.n))[0].numpy()
    t0 = time.perf_counter()
    embed({"warm": fit[:500]}, "warm", EmbedConfig(seed=1))  # first fit: numba JIT
    t_jit = time.perf_counter() - t0
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1)
    t0 = time.perf_counter()
    reducer.fit(fit)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    reducer.transform(other)
    t_tr = time.perf_counter() - t0
    print(
        f"first (JIT) fit of 500 points: {t_jit:.1f} s; after JIT: fit {args.n} points {t_fit:.1f} s, "
        f"transform {args.n} points {t_tr:.1f} s"
    )


if __name__ == "__main__":
    main()
