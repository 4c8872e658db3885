"""Retrain: the gold standard of exact unlearning, a fresh model trained from scratch on the retain set only.

The same architecture (in_channels, num_classes, image_size) is initialised anew from the config's seed and trained
with plain cross-entropy on D_r = D \\ D_f with the base-training recipe (SGD, cosine schedule, augmentation):

    θ_r = argmin_θ E_{(x, y) ∈ D_r} CE(m_θ(x), y)

No weight of the original model is used; the input model only supplies the architecture and the device.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from opc_core.data import ImageData, Split
from opc_core.env.device import model_device
from opc_core.methods.base import UnlearnConfig, register_method
from opc_core.models import create_model
from opc_core.train.loop import hp, seed_everything
from opc_core.train.zoo import fit_classifier


@dataclass(frozen=True)
class Config(UnlearnConfig):
    epochs: float = hp(15.0, "Training epochs over the retain set (from scratch)", 0.05, 500)
    lr: float = hp(0.05, "Peak learning rate", 1e-6, 10.0)
    schedule: str = hp("cosine", "Learning-rate schedule", choices=("constant", "cosine"))
    augment: bool = hp(True, "Random crop (and flip for natural images) on the batches, as in base training")


@register_method(
    "retrain",
    Config,
    "Train a fresh model of the same architecture from scratch on the retain set (the gold standard)",
    paper="Exact unlearning baseline (retraining without D_f)",
)
def unlearn(
    model: nn.Module, data: ImageData, split: Split, cfg: Config, *, on_step=None, stop=None, monitor=None
) -> nn.Module:
    device = model_device(model)
    seed_everything(cfg.seed)  # the fresh initialisation depends on the seed only
    fresh = create_model(model.arch, model.in_channels, model.num_classes, model.image_size).to(device)
    fit_classifier(fresh, data.to(device), split.retain_idx, cfg, on_step=_renamed(on_step), stop=stop, monitor=monitor)
    return fresh.eval()


def _renamed(on_step):
    """fit_classifier logs its term as "ce"; report it as "retain_ce" plus "loss", like the other methods."""
    if on_step is None:
        return None

    def relay(info):
        ce = info.losses.get("ce", float("nan"))
        info.losses = {"retain_ce": ce, "loss": ce}
        on_step(info)

    return relay
