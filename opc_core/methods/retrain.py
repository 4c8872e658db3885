"""Retrain: the gold standard of exact unlearning, a fresh model trained from scratch on the retain set only.

The same architecture (in_channels, num_classes, image_size) is initialised anew from the config's seed and trained
with plain cross-entropy on D_r = D \\ D_f with the base-training recipe (SGD, cosine schedule, augmentation):

    θ_r = argmin_θ E_{(x, y) ∈ D_r} CE(m_θ(x), y)

No weight of the original model is used; the input model only supplies the architecture and the device.
"""

from __future__ import annotations

from dataclasses import dataclass

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, register_method
from opc_core.methods.common import retain_ce


@dataclass(frozen=True)
class Config(UnlearnConfig):
    epochs: float = hp(15.0, "Training epochs over the retain set (from scratch)", 0.05, 500)
    lr: float = hp(0.05, "Peak learning rate", 1e-6, 10.0)
    schedule: str = hp("cosine", "Learning-rate schedule", choices=("constant", "cosine"))
    augment: bool = hp(True, "Random crop (and flip for natural images) on the batches, as in base training")


register_method(
    "retrain",
    Config,
    "Train a fresh model of the same architecture from scratch on the retain set (the gold standard)",
    plan=Plan(streams=("retain",), from_scratch=True),
    paper="Exact unlearning baseline (retraining without D_f)",
)(retain_ce)
