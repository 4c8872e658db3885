"""One call that scores an unlearned model against the original (docs/science.md §5): accuracies, MIA, representation.

The result is plain JSON: Python floats, ints, bools, lists and dicts; every NaN or infinity becomes ``None``. NaN
arises only where documented: ``forget_test_acc`` in random mode (no test image of a forgotten class), a ``per_class``
entry for a class absent from ``split.test_idx``, and ``mia`` when ``mia=False`` (then it is ``None`` directly).
``representation.contraction_radius`` is ``None`` only in the pathological case of a collapsed retain set.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from opc_core.data import ImageData
from opc_core.data.split import Split
from opc_core.env.jsonable import to_jsonable
from opc_core.metrics.accuracy import unlearning_accuracies
from opc_core.metrics.mia import mia_efficacy
from opc_core.metrics.representation import representation_stats
from opc_core.train.inference import ForwardMemo, fingerprint

log = logging.getLogger(__name__)

ORIGINAL_KEYS = ("ua", "ra", "ta", "forget_test_acc", "test_acc_all", "per_class")


def evaluate(
    original: nn.Module,
    unlearned: nn.Module,
    data: ImageData,
    split: Split,
    *,
    mia: bool = True,
    max_samples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score ``unlearned`` (and, for reference, ``original``) on one split.

    Args:
        original: The model before unlearning.
        unlearned: The model after unlearning (may be the original itself, e.g. to score the starting point).
        data: The dataset the split indexes.
        split: The forget/retain and test/calibration partition.
        mia: Run the MIA-efficacy attack (an SVC fit per model; off for quick previews).
        max_samples: Cap on each MIA shadow set and on the D_f/D_r subsamples of the representation metrics.
        seed: Seeds those subsamples.

    Returns:
        ``{"ua", "ra", "ta", "forget_test_acc", "test_acc_all", "per_class", "mia",
        "original": {"ua", "ra", "ta", "forget_test_acc", "test_acc_all", "per_class", "mia"},
        "representation": {...representation_stats keys...}}``, JSON-safe (NaN -> None).
    """
    # every image goes through each model once; the original's rows are kept for the next evaluation of the same
    # original on the same data (a comparison evaluates one original against several methods)
    memo = ForwardMemo()
    memo.track(unlearned)
    if original is not unlearned:
        memo.track(original, share=("original", fingerprint(original), data.name, id(data)))
    with memo.active():
        out: dict[str, Any] = dict(unlearning_accuracies(unlearned, data, split))
        out["mia"] = mia_efficacy(unlearned, data, split, max_per_set=max_samples, seed=seed) if mia else None
        before = unlearning_accuracies(original, data, split)
        out["original"] = {k: before[k] for k in ORIGINAL_KEYS}
        out["original"]["mia"] = (
            mia_efficacy(original, data, split, max_per_set=max_samples, seed=seed) if mia else None
        )
        out["representation"] = representation_stats(
            original, unlearned, data, split, max_samples=max_samples, seed=seed
        )
    log.info(
        "evaluate: UA %.2f RA %.2f TA %.2f MIA %s (original UA %.2f)",
        out["ua"],
        out["ra"],
        out["ta"],
        "off" if out["mia"] is None else f"{out['mia']:.2f}",
        before["ua"],
    )
    return to_jsonable(out)
