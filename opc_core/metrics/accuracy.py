"""Accuracy metrics of unlearning (docs/science.md §5): UA, RA, TA and per-class accuracy.

Following the evaluation protocol of Jia et al. 2023 ("Model sparsity can simplify machine unlearning") that the OPC
paper (arXiv 2507.07754, §5) reuses:

- **UA** (unlearning accuracy) = 100 - accuracy on the forget set D_f (training indices ``split.forget_idx``);
  higher means more forgotten.
- **RA** (remaining accuracy) = accuracy on the retain set D_r (``split.retain_idx``).
- **TA** (test accuracy) = accuracy on ``split.test_idx`` (the half of the test split not held out for attack
  calibration), restricted to the retained classes in class-wise mode; the forget classes' test accuracy is reported
  separately as ``forget_test_acc`` (NaN in random mode, where no test image belongs to a forgotten class).

All accuracies are percentages in [0, 100]; an empty set gives ``float("nan")``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from opc_core.data import ImageData
from opc_core.data.split import Split
from opc_core.train.inference import labels_of, logits_of

log = logging.getLogger(__name__)


def accuracy_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent of logits (N, K) against labels (N,); NaN when N == 0."""
    if len(labels) == 0:
        return float("nan")
    pred = logits.argmax(1).cpu()  # (N,)
    return 100.0 * (pred == labels.cpu()).float().mean().item()


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Accuracy in percent of each true class 0..num_classes-1; NaN for a class without samples."""
    pred = logits.argmax(1).cpu()  # (N,)
    labels = labels.cpu()
    out = []
    for c in range(num_classes):
        mask = labels == c  # (N,)
        n = int(mask.sum())
        out.append(float("nan") if n == 0 else 100.0 * (pred[mask] == c).float().mean().item())
    return out


def split_test_masks(data: ImageData, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks over ``split.test_idx``: ``(retained, forgotten)`` classes (all retained in random mode)."""
    y = labels_of(data, split.test_idx, "test")  # (M,)
    forgotten = torch.isin(y, torch.tensor(list(split.forget_classes), dtype=torch.int64))  # (M,)
    return ~forgotten, forgotten


def retained_test_idx(data: ImageData, split: Split) -> torch.Tensor:
    """The test indices that measure TA: ``split.test_idx`` minus the forget classes' images in class mode."""
    retained, _ = split_test_masks(data, split)
    return split.test_idx[retained]


def unlearning_accuracies(model: nn.Module, data: ImageData, split: Split) -> dict[str, Any]:
    """UA, RA, TA, the forget classes' test accuracy and per-class test accuracy of ``model``.

    Args:
        model: Any model with ``features``/``head`` (the original or an unlearned one).
        data: The dataset the split indexes.
        split: The forget/retain and test/calibration partition.

    Returns:
        ``{"ua", "ra", "ta", "forget_test_acc", "test_acc_all", "per_class"}``: percentages; ``per_class`` is a list
        over all classes computed on ``split.test_idx`` (NaN for a class absent from it); ``forget_test_acc`` is NaN in
        random mode; ``test_acc_all`` is the accuracy on all of ``split.test_idx``.
    """
    z_forget = logits_of(model, data, split.forget_idx, "train")  # (N_f, K)
    z_retain = logits_of(model, data, split.retain_idx, "train")  # (N_r, K)
    z_test = logits_of(model, data, split.test_idx, "test")  # (M, K)
    y_test = labels_of(data, split.test_idx, "test")  # (M,)
    retained, forgotten = split_test_masks(data, split)
    forget_acc = accuracy_from_logits(z_forget, labels_of(data, split.forget_idx, "train"))
    return {
        "ua": float("nan") if math.isnan(forget_acc) else 100.0 - forget_acc,
        "ra": accuracy_from_logits(z_retain, labels_of(data, split.retain_idx, "train")),
        "ta": accuracy_from_logits(z_test[retained], y_test[retained]),
        "forget_test_acc": accuracy_from_logits(z_test[forgotten], y_test[forgotten]),
        "test_acc_all": accuracy_from_logits(z_test, y_test),
        "per_class": per_class_accuracy(z_test, y_test, data.num_classes),
    }
