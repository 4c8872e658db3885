"""Add a trained checkpoint to the shipped zoo (assets/zoo), optionally in half precision, its accuracy re-measured.

    .venv/bin/python scripts/ship_checkpoint.py PATH.safetensors [--half]

``--half`` stores every floating-point tensor as float16 (ResNet-18: 45 MB -> 22 MB); loading copies them into the
float32 model, so nothing else changes. The test accuracy written into the shipped sidecar is measured on the stored
weights as loaded (``test_accuracy``); the sidecar keeps the full-precision figure as ``test_accuracy_float32`` and
says ``stored_dtype``. The sidecar's recipe, seed and versions are the trained checkpoint's own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", help="the trained checkpoint's .safetensors (its .json beside it)")
    ap.add_argument("--half", action="store_true", help="store floating-point tensors as float16")
    args = ap.parse_args()

    from safetensors.torch import load, save

    from opc_core.data import load_dataset
    from opc_core.env import paths
    from opc_core.train.checkpoint import FORMAT, atomic_write, load_checkpoint, read_sidecar, sidecar_bytes
    from opc_core.train.inference import accuracy

    src = Path(args.weights)
    meta = read_sidecar(src.with_suffix(".json"))
    state = load(src.read_bytes())
    if args.half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    dest = paths.SHIPPED_ZOO / src.name
    atomic_write(dest, save(state, metadata={"format": FORMAT, "arch": meta["arch"]}))
    side = {**meta, "stored_dtype": "float16" if args.half else "float32"}
    side.pop("path", None)
    atomic_write(dest.with_suffix(".json"), sidecar_bytes(side))
    model, _ = load_checkpoint(dest, device="cpu")
    acc = round(accuracy(model, load_dataset(meta["dataset"], device="cpu"), split="test"), 2)
    side.update(test_accuracy=acc, test_accuracy_float32=meta["test_accuracy"])
    atomic_write(dest.with_suffix(".json"), sidecar_bytes(side))
    print(
        json.dumps(
            {
                "shipped": dest.name,
                "bytes": dest.stat().st_size,
                "test_accuracy": acc,
                **{"test_accuracy_float32": meta["test_accuracy"], "stored_dtype": side["stored_dtype"]},
            }
        )
    )


if __name__ == "__main__":
    main()
