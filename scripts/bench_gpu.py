"""The GPU path measured (issue 14, item 5): ``bash dev.sh bench gpu`` on a machine with a CUDA GPU.

1. A ResNet-18 unlearning epoch (OPC, the library's own loop: bf16 autocast, channels_last, data on the device) on
   50,000 CIFAR-size 32x32x3 images against a bare forward/backward/step loop on the same model and batch
   (goal: >= 0.70 of the bare loop's throughput); FT's epoch against the bare loop at its own batch.
2. OPC's step cost against FT's, at forget_batch 1 and 0.25.
3. Gradient inversion of 8 images as one batch against one by one (goal: >= 4x).
4. A sweep of 8 cells (both OPC variants x 4 lambda, fashion_mnist_small / cnn_small) on Ray with one GPU shared
   by the cells (``--gpus-per-cell``, default 0.25: four at a time).

The images are a fixed pattern per class (no random draw, no download), so every machine times the same input. Prints
one JSON document (and writes it to ``--out`` when given). Without CUDA it stops at once and says so (exit code 2);
``--smoke`` runs every part at toy sizes on any device, to check the code path on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def synthetic_cifar(n_train: int, n_test: int = 1000, classes: int = 10):
    """CIFAR-shaped uint8 images, a deterministic pattern per class and index (no random draw)."""
    from opc_core.data import ImageData

    def images(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.arange(offset, offset + n).view(-1, 1, 1, 1)
        c, h, w = (
            torch.arange(3).view(1, 3, 1, 1),
            torch.arange(32).view(1, 1, 32, 1),
            torch.arange(32).view(1, 1, 1, 32),
        )
        y = (i.view(-1) % classes).long()
        x = (i * 7 + c * 31 + h * 3 * (1 + y.view(-1, 1, 1, 1)) + w * 5 + y.view(-1, 1, 1, 1) * 25) % 256
        return x.to(torch.uint8), y

    (train_x, train_y), (test_x, test_y) = images(n_train, 0), images(n_test, n_train)
    return ImageData(
        "synthetic_cifar",
        train_x,
        train_y,
        test_x,
        test_y,
        [str(k) for k in range(classes)],
        (0.5,) * 3,
        (0.25,) * 3,
        True,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model, data, batch: int, steps: int, device: torch.device) -> float:
    """Seconds per step of forward + backward + SGD step on ``batch`` training images already on the device."""
    import torch.nn.functional as F

    model = model.to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = data.normalize(data.train_x[:batch].to(device))
    x = x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x
    y = data.train_y[:batch].to(device)
    for i in range(steps + 3):  # three warm-up steps (cuDNN autotuning, allocator)
        if i == 3:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def method_step(name: str, model, data, split, overrides: dict, device: torch.device) -> dict:
    """Seconds per step of a method in the library's loop (steps after the first three), and its steps."""
    from opc_core.methods import get_method, make_config

    times: list[float] = []

    def on_step(info) -> None:
        _sync(device)
        times.append(time.perf_counter())

    get_method(name)(model, data, split, make_config(name, overrides), on_step=on_step)
    if len(times) < 5:
        raise ValueError(f"{name}: {len(times)} steps are too few to time (need 5: three warm-up steps, then two)")
    return {"s_per_step": (times[-1] - times[2]) / (len(times) - 3), "steps": len(times)}


def epoch_vs_bare(model, data, split, device: torch.device, batch: int, max_steps: int = 0) -> dict:
    """Throughput of OPC's and FT's unlearning epochs against the bare loop at the same images per step (OPC draws
    a retain and a forget batch: twice the bare loop's ``batch``)."""
    cfg = {"epochs": 1, "batch_size": batch, **({"max_steps": max_steps} if max_steps else {})}
    opc = method_step("opc", model, data, split, cfg, device)
    ft = method_step("ft", model, data, split, cfg, device)
    n = min(50, opc["steps"])
    bare_2b, bare_b = bare_loop(model, data, 2 * batch, n, device), bare_loop(model, data, batch, n, device)
    return {
        "opc": {**opc, "bare_s_per_step": bare_2b, "ratio_of_bare": bare_2b / opc["s_per_step"]},
        "ft": {**ft, "bare_s_per_step": bare_b, "ratio_of_bare": bare_b / ft["s_per_step"]},
        "batch": batch,
        "goal": 0.70,
    }


def step_costs(model, data, split, device: torch.device, batch: int, steps: int) -> dict:
    """OPC's step (both variants' loss is one forward pass) at forget_batch 1 and 0.25, against FT's."""
    common = {"max_steps": steps, "batch_size": batch, "epochs": 50}
    ft = method_step("ft", model, data, split, common, device)["s_per_step"]
    out = {"ft_s_per_step": ft}
    for frac in (1.0, 0.25):
        s = method_step("opc", model, data, split, {**common, "forget_batch": frac}, device)["s_per_step"]
        out[f"opc_forget_batch_{frac}"] = {"s_per_step": s, "x_ft": s / ft}
    return out


def inversion(model, data, device: torch.device, iterations: int) -> dict:
    """Gradient inversion of 8 images: one batch of independent problems against one by one."""
    from opc_core.attacks.inversion import InversionConfig, invert

    images, labels = data.train_x[:8], data.train_y[:8]
    out = {}
    for batched in (True, False):
        cfg = InversionConfig(iterations=iterations, batched=batched, snapshot_every=0)
        _sync(device)
        t0 = time.perf_counter()
        invert(model.to(device).eval(), data, images, labels, cfg)
        _sync(device)
        out["batched_s" if batched else "one_by_one_s"] = time.perf_counter() - t0
    out["speedup"] = out["one_by_one_s"] / out["batched_s"]
    out["goal"] = 4.0
    return out


def ray_sweep(gpus_per_cell: float, cpus_per_cell: float, smoke: bool) -> dict:
    """Eight cells (two OPC variants x four lambda) on a local Ray instance sharing this machine's GPU."""
    import opc_core.jobs  # noqa: F401  (registers the ray engine)
    from opc_core.runs.store import RunStore
    from opc_core.workflows import start
    from opc_core.workflows.sweep import SweepParams

    store = RunStore()
    params = SweepParams(
        dataset="digits" if smoke else "fashion_mnist_small",
        methods=["opc", "opc:layer=features"],
        grid={"lam": ["0.1", "0.3", "1", "3"], **({"max_steps": ["2"]} if smoke else {})},
        attacks=["fm"],
        mia=False,
        engine="ray",
        cpus_per_cell=cpus_per_cell,
        gpus_per_cell=gpus_per_cell,
    )
    t0 = time.perf_counter()
    out = start(params, store)
    wall = time.perf_counter() - t0
    cells = [store.get(c["run_id"]) for c in out["cells"]]
    busy = sum(c.duration_s or 0.0 for c in cells)
    return {
        "cells": len(cells),
        "done": sum(c.done for c in cells),
        "wall_s": wall,
        "cell_s_mean": busy / len(cells),
        "parallelism": busy / wall,
        "gpus_per_cell": gpus_per_cell,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="toy sizes on any device (checks the code path)")
    ap.add_argument("--gpus-per-cell", type=float, default=0.25)
    ap.add_argument("--cpus-per-cell", type=float, default=2.0)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: epoch,steps,inversion,ray")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        sys.stderr.write(
            "bench_gpu.py needs a CUDA GPU: torch.cuda.is_available() is False here (torch "
            f"{torch.__version__}). Run it on a machine with one (bash dev.sh bench gpu), or --smoke for a toy run.\n"
        )
        return 2
    from opc_core.data import make_split
    from opc_core.env.device import default_device, describe_device
    from opc_core.models import create_model

    device = default_device("cuda" if torch.cuda.is_available() and not args.smoke else None)
    os.environ.setdefault("OPC_LAB_HOME", str(ROOT / ".opc_lab"))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    data = synthetic_cifar(512 if args.smoke else 50_000, 64 if args.smoke else 1000).to(device)
    split = make_split(data, forget_classes=[0, 1, 2], seed=0)
    torch.manual_seed(0)
    model = create_model("resnet18", 3, 10, 32).to(device)
    res: dict = {"device": describe_device(device), "torch": torch.__version__, "smoke": args.smoke}
    parts = {
        "epoch": lambda: epoch_vs_bare(model, data, split, device, 8 if args.smoke else 128, 6 if args.smoke else 0),
        "steps": lambda: step_costs(model, data, split, device, 8 if args.smoke else 128, 6 if args.smoke else 60),
        "inversion": lambda: inversion(model, data, device, 3 if args.smoke else 200),
        "ray": lambda: ray_sweep(args.gpus_per_cell if device.type == "cuda" else 0.0, args.cpus_per_cell, args.smoke),
    }
    for name, fn in parts.items():
        if name in skip:
            continue
        t0 = time.perf_counter()
        res[name] = fn()
        res[name]["part_s"] = time.perf_counter() - t0
        print(f"{name}: {json.dumps(res[name])}", file=sys.stderr, flush=True)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
