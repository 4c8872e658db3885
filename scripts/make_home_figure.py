"""Draw the home page's picture from real models: shallow (FT) vs deep (OPC) forgetting in one shared PCA map.

Loads the shipped pretrained ``cnn_small`` on the embedded Fashion-MNIST subset, unlearns classes 0, 1, 2 with FT and
with OPC (the dataset's presets, epochs capped for speed), fits a 2-D PCA on the ORIGINAL model's penultimate features
of a fixed sample and projects all three models' features into that same map. Each panel's title carries UA and the
recovered UA after the paper's feature-mapping (FM) attack. Writes ``assets/img/shallow_vs_deep.png`` and a JSON file
with the numbers next to it.

    .venv/bin/python scripts/make_home_figure.py [--epochs 3] [--out assets/img/shallow_vs_deep.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--model", default="cnn_small")
    ap.add_argument("--epochs", type=float, default=3.0, help="cap on the unlearning epochs of each method")
    ap.add_argument("--out", default=str(ROOT / "assets" / "img" / "shallow_vs_deep.png"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from opc_core.attacks import run_recovery
    from opc_core.methods import get_method, make_config
    from opc_core.train.inference import features_and_logits
    from opc_core.train.zoo import load_for
    from opc_core.workflows.unlearn import build_split, sample_indices

    torch.set_num_threads(2)
    data, original, meta = load_for(args.dataset, args.model, device="cpu")
    split = build_split(data, [0, 1, 2], None, seed=0)
    sample = sample_indices(split, n_forget=300, n_retain=700, seed=0)
    idx = torch.cat([sample["forget"], sample["retain"]])
    is_forget = np.r_[np.ones(len(sample["forget"]), bool), np.zeros(len(sample["retain"]), bool)]
    labels = data.train_y[idx].numpy()

    models, numbers = {"original": original}, {}
    for method in ("ft", "opc"):
        cfg = make_config(method, {}, args.dataset)
        if cfg.epochs > args.epochs:
            cfg = make_config(method, {"epochs": args.epochs}, args.dataset)
        t0 = time.perf_counter()
        models[method] = get_method(method)(original, data, split, cfg)
        numbers[method] = {"epochs": cfg.epochs, "seconds": round(time.perf_counter() - t0, 1)}
    for name, model in models.items():
        _, z = features_and_logits(model, data, split.forget_idx)
        acc = 100.0 * float((z.argmax(1) == data.train_y[split.forget_idx]).float().mean())
        rec = run_recovery(model, original, data, split, ["fm"])["fm"]["recovered_ua"] if name != "original" else None
        numbers.setdefault(name, {}).update(ua=round(100.0 - acc, 1), fm_recovered_ua=rec and round(rec, 1))

    feats = {k: features_and_logits(m, data, idx)[0].numpy() for k, m in models.items()}  # (n, D) each
    mean = feats["original"].mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(feats["original"] - mean, full_matrices=False)
    pts = {k: (f - mean) @ vt[:2].T for k, f in feats.items()}  # (n, 2), one shared map
    allp = np.concatenate(list(pts.values()))
    lo, hi = allp.min(0), allp.max(0)
    pad = 0.05 * (hi - lo)

    titles = {"original": "Original model", "ft": "FT: shallow forgetting", "opc": "OPC: deep forgetting"}
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.1), dpi=110)
    for ax, name in zip(axes, ("original", "ft", "opc")):
        p = pts[name]
        ax.scatter(p[~is_forget, 0], p[~is_forget, 1], s=5, c="#9AA5B1", alpha=0.5, label="retain set", lw=0)
        for c, marker in zip(sorted(set(labels[is_forget])), ("o", "s", "^")):
            m = is_forget & (labels == c)
            ax.scatter(
                p[m, 0], p[m, 1], s=9, c="#D62728", marker=marker, alpha=0.8, lw=0, label=f"forget: {data.classes[c]}"
            )
        n = numbers[name]
        sub = (
            "before unlearning"
            if name == "original"
            else f"UA {n['ua']:.0f}% · after FM attack {n['fm_recovered_ua']:.0f}%"
        )
        ax.set_title(f"{titles[name]}\n{sub}", fontsize=10)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="lower left", markerscale=2)
    fig.suptitle(
        f"Penultimate features of {args.model} on {args.dataset} (PCA fitted on the original model; "
        "red = the 3 forgotten classes)",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    out.with_suffix(".json").write_text(
        json.dumps({"checkpoint": Path(meta["path"]).name, "forget_classes": [0, 1, 2], "numbers": numbers}, indent=2)
    )
    print(f"wrote {out}: {json.dumps(numbers)}")


if __name__ == "__main__":
    main()
