"""Benchmark the shared UMAP map: the numba compilation, the default sample's map, and 5,000 points (fit and
transform), with OPC Lab's exact-neighbour map (opc_core.embedding.projection) beside umap-learn's own fit/transform.

Features: penultimate features of the shipped cnn_small on fashion_mnist_small training images. The default sample is
what the Feature space page maps for one run: 600 points (300 forget + 300 retain) fitted, then the unlearned model's
and 13 snapshots' 600 points each placed into the map (here: 14 other 600-image sets of the same model).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/bench_umap.py [--n 5000] [--skip-umap-learn]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.embedding.projection import EmbedConfig, embed  # noqa: E402
from opc_core.train.inference import features_and_logits  # noqa: E402
from opc_core.train.zoo import load_for  # noqa: E402


def timed(label: str, fn, results: list) -> object:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    results.append((label, time.perf_counter() - t0, time.process_time() - c0))
    print(f"{label:<58} {results[-1][1]:6.1f} s wall {results[-1][2]:6.1f} s CPU", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--skip-umap-learn", action="store_true", help="skip umap-learn's own fit/transform")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    data, model, _ = load_for("fashion_mnist_small", "cnn_small", device="cpu")
    feats = features_and_logits(model, data, torch.arange(2 * args.n))[0].numpy()
    fit, other = feats[: args.n], feats[args.n :]
    sample = {"original": feats[:600], **{f"set{i}": feats[600 * (i + 1) : 600 * (i + 2)] for i in range(14)}}
    res: list = []
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}")
    timed("first map in a process (numba compilation), 100 points", lambda: embed_tiny(feats), res)
    timed("default sample: fit 600, place 14 x 600 (OPC Lab)", lambda: embed(sample, "original"), res)
    big = {"fit": fit, "other": other}
    timed(f"fit {args.n} + place {args.n} (OPC Lab)", lambda: embed(big, "fit"), res)
    timed(f"fit {args.n} only (OPC Lab)", lambda: embed({"fit": fit}, "fit", EmbedConfig(seed=3)), res)
    if not args.skip_umap_learn:
        import umap

        warnings.filterwarnings("ignore")
        reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1)
        timed(f"umap-learn fit {args.n} (NNDescent, 500 epochs)", lambda: reducer.fit(fit), res)
        timed(f"umap-learn transform {args.n} (compiles its search)", lambda: reducer.transform(other), res)
        timed(f"umap-learn transform {args.n} again (compiled)", lambda: reducer.transform(other), res)
    print(f"load average {os.getloadavg()[0]:.2f}")


def embed_tiny(feats):
    return embed({"a": feats[:100], "b": feats[100:150]}, "a", EmbedConfig(seed=1))


if __name__ == "__main__":
    main()
