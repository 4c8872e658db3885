"""Benchmark: the shared training loop's throughput vs a bare forward/backward/step loop, side by side.

Both loops train the same architecture with the same optimiser and batch size on the embedded Fashion-MNIST subset;
the bare loop re-uses one pre-normalised batch, the shared loop draws, normalises (and optionally augments) its
batches and reports named loss terms every step. Runs alternate (bare, loop, bare, loop, ...) and the median of each
is reported, so both see the same machine state.

    python scripts/bench_training.py [--models cnn_small,resnet18] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.data import load_dataset  # noqa: E402
from opc_core.env.device import default_device, describe_device  # noqa: E402
from opc_core.models import create_model  # noqa: E402
from opc_core.train.loop import OptimConfig  # noqa: E402
from opc_core.train.zoo import fit_classifier  # noqa: E402

SETTINGS = {"cnn_small": dict(batch=128, steps=20, repeats=5), "resnet18": dict(batch=64, steps=3, repeats=3)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(model, x, y, steps, device) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    use_amp = device.type == "cuda"
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return steps * len(y) / (time.perf_counter() - t0)


def shared_loop(model, data, steps, batch, augment, device) -> float:
    n = steps * batch  # exactly `steps` full batches in one epoch
    cfg = OptimConfig(epochs=1, batch_size=batch, lr=0.01, schedule="constant", augment=augment)
    reported = []
    _sync(device)
    t0 = time.perf_counter()
    fit_classifier(model, data, torch.arange(n), cfg, on_step=reported.append)
    _sync(device)
    assert len(reported) == steps
    return n / (time.perf_counter() - t0)


def bench_model(name: str, data, device, settings) -> dict:
    torch.manual_seed(0)
    model = create_model(name, data.in_channels, data.num_classes, data.image_size).to(device)
    b, steps = settings["batch"], settings["steps"]
    x = data.normalize(data.train_x[:b]).to(device)
    y = data.train_y[:b].to(device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        model.to(memory_format=torch.channels_last)
    bare_loop(model, x, y, 2, device)  # warm-up
    runs = {"bare": [], "loop": [], "loop_augment": []}
    for _ in range(settings["repeats"]):
        runs["bare"].append(bare_loop(model, x, y, steps, device))
        runs["loop"].append(shared_loop(model, data, steps, b, False, device))
        runs["loop_augment"].append(shared_loop(model, data, steps, b, True, device))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "model": name,
        "batch": b,
        "steps_per_run": steps,
        "repeats": settings["repeats"],
        "bare_img_s": round(med["bare"], 1),
        "loop_img_s": round(med["loop"], 1),
        "loop_augment_img_s": round(med["loop_augment"], 1),
        "ratio": round(med["loop"] / med["bare"], 3),
        "ratio_augment": round(med["loop_augment"] / med["bare"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="cnn_small,resnet18")
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--device")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device(args.device)
    data = load_dataset(args.dataset, device=device)
    rows = []
    for name in args.models.split(","):
        s = dict(SETTINGS.get(name, SETTINGS["resnet18"]))
        if device.type == "cuda":
            s.update(steps=s["steps"] * 10, repeats=5)
        rows.append(bench_model(name, data, device, s))
    out = {
        "device": describe_device(device),
        "dataset": args.dataset,
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"device: {out['device']}   dataset: {args.dataset}")
    print(f"{'model':<10} {'bare img/s':>11} {'loop img/s':>11} {'ratio':>6} {'loop+aug img/s':>15} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['model']:<10} {r['bare_img_s']:>11.1f} {r['loop_img_s']:>11.1f} {r['ratio']:>6.3f} "
            f"{r['loop_augment_img_s']:>15.1f} {r['ratio_augment']:>6.3f}"
        )


if __name__ == "__main__":
    main()
