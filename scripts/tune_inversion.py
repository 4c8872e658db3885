"""Compare gradient-inversion settings on the original model: mean PSNR of the same seeded forget images per split.

The images are those a benchmark inverts on that split (``forget_sample(split, n, seed=0)``), the model is the zoo's
checkpoint (the shipped one on the embedded default), so a row here is the "original" column of
``scripts/make_results.py`` under other settings. Each setting is one ``--set`` of space-separated KEY=VALUE pairs over
the ``InversionConfig`` defaults; the table of docs/science.md §7 was made with this script:

    python scripts/tune_inversion.py --splits 1,4,9@13 2,5,8@7 0,3,6@21 \\
        --set "restarts=1 iterations=1000" --set "" --set "restarts=4 iterations=250"

It prints, per setting and split, the mean PSNR / SSIM, the per-image PSNR, the no-information references of the same
images, the wall time, and the load average when it ran (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--model", default="cnn_small")
    ap.add_argument("--splits", nargs="+", default=["1,4,9@13", "2,5,8@7", "0,3,6@21"])
    ap.add_argument("--set", action="append", default=None, help='settings, e.g. "restarts=1 iterations=1000"')
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from opc_core.attacks.inversion import InversionConfig, invert
    from opc_core.attacks.inversion.references import reference_scores
    from opc_core.config import build_config, parse_kv
    from opc_core.data import make_split
    from opc_core.train.zoo import load_for
    from opc_core.workflows.attack import forget_sample

    torch.set_num_threads(args.threads)
    data, model, _ = load_for(args.dataset, args.model, device="cpu")
    rows = []
    for text in args.set if args.set is not None else [""]:
        settings = parse_kv(text.split())  # strings: build_config coerces each to its field's type
        cfg = build_config(InversionConfig, overrides=settings, owner="gradient inversion")
        for split_text in args.splits:
            classes, _, seed = split_text.partition("@")
            split = make_split(data, forget_classes=[int(c) for c in classes.split(",")], seed=int(seed or 0))
            idx = forget_sample(split, args.images, seed=0)
            images, labels = data.train_x[idx], data.train_y[idx]
            refs = reference_scores(data, images.float() / 255.0, labels)
            t0 = time.perf_counter()
            res = invert(model, data, images, labels, cfg)
            row = {
                "settings": settings,
                "split": split_text,
                "psnr": round(float(res.psnr.mean()), 2),
                "ssim": round(float(res.ssim.mean()), 3),
                "psnr_per_image": [round(float(v), 1) for v in res.psnr],
                "restart_kept": res.restart.tolist(),
                "references": {k: round(float(v["psnr"].mean()), 2) for k, v in refs.items()},
                "seconds": round(time.perf_counter() - t0, 1),
                "load_average": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            if not args.json:
                print(
                    f"{text or 'defaults':32s} {split_text:9s} {row['psnr']:6.2f} dB  SSIM {row['ssim']:.3f}  "
                    f"{row['seconds']:6.1f} s (load {row['load_average']})  per image {row['psnr_per_image']}  "
                    f"references {row['references']}",
                    flush=True,
                )
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
