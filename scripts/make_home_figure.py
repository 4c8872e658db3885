"""Draw the home page's picture from real models: shallow vs deep forgetting in one shared PCA map.

Loads the shipped pretrained ``cnn_small`` on the embedded Fashion-MNIST subset, unlearns classes 0, 1, 2 (split and
unlearning seed 0) with FT, OPC on the logits (the paper's loss) and OPC-features, each with its preset, fits a 2-D
PCA on the ORIGINAL model's penultimate features of a fixed sample and projects every model's features into that same
map; the forget points are coloured by their true class. Each panel's title carries UA, the UA left after the paper's
feature-mapping (FM) attack, and the accuracy of a linear probe telling the forget classes apart inside D_f (the
diagnostic of docs/science.md §9). Writes ``assets/img/shallow_vs_deep.png`` and a JSON file with the numbers.

    .venv/bin/python scripts/make_home_figure.py [--out assets/img/shallow_vs_deep.png]
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
    ap.add_argument("--out", default=str(ROOT / "assets" / "img" / "shallow_vs_deep.png"))
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from opc_core.attacks import FeatureBank, run_recovery
    from opc_core.attacks.recovery.diagnostic import where_forgotten
    from opc_core.methods import get_method, make_config
    from opc_core.methods.opc import method_label
    from opc_core.report.plots import CLASS_COLORS
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

    methods = ("ft", "opc", "opc_features")
    models, numbers = {"original": original}, {}
    for method in methods:
        cfg = make_config(method, {"seed": 0}, args.dataset)
        t0 = time.perf_counter()
        models[method] = get_method(method)(original, data, split, cfg)
        numbers[method] = {"epochs": cfg.epochs, "seconds": round(time.perf_counter() - t0, 1)}
    for name, model in models.items():
        _, z = features_and_logits(model, data, split.forget_idx)
        acc = 100.0 * float((z.argmax(1) == data.train_y[split.forget_idx]).float().mean())
        bank = FeatureBank(model, original, data, split)
        rec = run_recovery(model, original, data, split, ["fm"], bank=bank)["fm"]["recovered_ua"]
        diag = where_forgotten(model, original, data, split, bank=bank)
        numbers.setdefault(name, {}).update(
            ua=round(100.0 - acc, 1),
            fm_recovered_ua=round(rec, 1),
            probe_inside=round(diag["probe_inside"], 1),
            fm_null_ua=round(diag["fm_null_ua"], 1),
        )

    feats = {k: features_and_logits(m, data, idx)[0].numpy() for k, m in models.items()}  # (n, D) each
    mean = feats["original"].mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(feats["original"] - mean, full_matrices=False)
    pts = {k: (f - mean) @ vt[:2].T for k, f in feats.items()}  # (n, 2), one shared map
    allp = np.concatenate(list(pts.values()))
    lo, hi = allp.min(0), allp.max(0)
    pad = 0.05 * (hi - lo)

    titles = {
        "original": "Original model",
        "ft": "FT: shallow",
        "opc": f"{method_label('opc')}: shallow",
        "opc_features": f"{method_label('opc_features')}: deep",
    }
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.3), dpi=110)
    for ax, name in zip(axes, ("original", *methods)):
        p = pts[name]
        ax.scatter(p[~is_forget, 0], p[~is_forget, 1], s=5, c="#9AA5B1", alpha=0.5, label="retain set", lw=0)
        for c in sorted(set(labels[is_forget])):
            m = is_forget & (labels == c)
            ax.scatter(p[m, 0], p[m, 1], s=9, c=CLASS_COLORS[c], alpha=0.85, lw=0, label=f"forget: {data.classes[c]}")
        n = numbers[name]
        sub = (
            f"UA {n['ua']:.0f}% · probe inside D_f {n['probe_inside']:.0f}%"
            if name == "original"
            else f"UA {n['ua']:.0f}% · after FM {n['fm_recovered_ua']:.0f}% · probe inside D_f {n['probe_inside']:.0f}%"
        )
        ax.set_title(f"{titles[name]}\n{sub}", fontsize=9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=7, loc="lower left", markerscale=2)
    fig.suptitle(
        f"Penultimate features of {args.model} on {args.dataset} (PCA fitted on the original model; coloured = the "
        "3 forgotten classes by true class; 'after FM' = UA left after the paper's attack, higher = forgotten)",
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
