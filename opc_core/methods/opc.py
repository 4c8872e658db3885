"""OPC, One-Point-Contraction unlearning (Jung, Jung, Bae, Lee, arXiv 2507.07754, 2025), in its two variants.

Deep forgetting as one-point contraction: the forget set is pulled to the origin of a representation while the
retain set keeps its cross-entropy. Per step, with a retain batch and a forget batch drawn together:

    L(θ) = CE(m_θ(x_r), y_r) + λ · mean_{x ∈ forget batch} ‖h_θ(x)‖₂^p

Two methods, named for what they contract (docs/science.md §3, §9):

- ``opc`` — **OPC (paper: logits)**, h = m, the loss as the paper states it. ∂‖Wf + b‖/∂f lies in the head's row space
  (K of D dimensions), so the loss can be met while the forget classes survive in the head's null space: measured
  shallow under FM on the shipped cnn_small (see docs/results.md).
- ``opc_features`` — **OPC-features**, h = f, the penultimate features; the variant that reproduces the paper's shape
  under FM here. Its preset keeps the paper's λ = 1.

The ``layer`` field stays on both (``opc:layer=features`` is the logits method's config switched to the features, with
the logits preset's other settings). Whether the paper's "ℓ2 norm" is squared is not stated: ``p`` is 1 (default) or 2.
Both batches go through ONE forward pass, so BatchNorm's batch statistics mix retain and forget samples. A fixed epoch
budget, no early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import UnlearnConfig, UnlearnContext, register_method

PAPER = "Jung et al., OPC: One-Point-Contraction Unlearning, arXiv 2507.07754 (2025)"
LABELS = {"opc": "OPC (paper: logits)", "opc_features": "OPC-features"}
"""Display names of the two variants; a bench variant ``opc[layer=features]`` is OPC-features too."""


@dataclass(frozen=True)
class Config(UnlearnConfig):
    layer: str = hp(
        "logits",
        "Representation pulled to the origin: 'logits' (the paper) or 'features' "
        "(penultimate layer, the deeper variant)",
        choices=("logits", "features"),
    )
    p: int = hp(1, "Exponent of the norm: 1 = ‖h‖₂ (default), 2 = squared ‖h‖₂²", choices=(1, 2))
    lam: float = hp(1.0, "λ, weight of the forget-norm term against the retain cross-entropy", 0.0, 100.0)


@dataclass(frozen=True)
class FeaturesConfig(Config):
    layer: str = hp(
        "features",
        "Representation pulled to the origin: 'features' (penultimate layer, this method) or 'logits' (the paper's)",
        choices=("logits", "features"),
    )


def opc_loss(model: nn.Module, batch: dict, ctx: UnlearnContext) -> tuple[torch.Tensor, dict]:
    cfg: Config = ctx.cfg
    (x_r, y_r), (x_f, _) = batch["retain"], batch["forget"]
    feats = model.features(torch.cat([x_r, x_f]))  # (B_r + B_f, D)
    logits = model.head(feats)  # (B_r + B_f, K)
    n_r = len(x_r)
    retain_ce = F.cross_entropy(logits[:n_r], y_r)
    h = (logits if cfg.layer == "logits" else feats)[n_r:].float()  # (B_f, K) or (B_f, D)
    forget_norm = h.norm(dim=1).pow(cfg.p).mean()
    loss = retain_ce + cfg.lam * forget_norm
    return loss, {"retain_ce": retain_ce.detach(), "forget_norm": forget_norm.detach(), "loss": loss.detach()}


register_method(
    "opc",
    Config,
    "OPC (paper: logits). One-point contraction of the logits, as the paper states it: CE on the retain set + "
    "λ·‖m(x)‖^p pulls the forget set's logits to the origin (measured shallow under FM on cnn_small: the forget "
    "classes survive in the head's null space)",
    paper=PAPER,
)(opc_loss)
register_method(
    "opc_features",
    FeaturesConfig,
    "OPC-features. One-point contraction of the penultimate features: CE on the retain set + λ·‖f(x)‖^p pulls the "
    "forget set's features to the origin (the variant that forgets deeply under FM here)",
    paper=PAPER + "; the feature-level variant its reviewers asked for",
)(opc_loss)


def method_label(name: str) -> str:
    """The display name of a method or bench variant: ``opc`` -> "OPC (paper: logits)", ``opc_features`` and
    ``opc[layer=features]`` -> "OPC-features", ``opc_features[p=2]`` -> "OPC-features [p=2]"; others unchanged."""
    base, _, rest = name.partition("[")
    if base not in LABELS:
        return name
    args = [a for a in rest.rstrip("]").split(",") if a]
    if base == "opc" and "layer=features" in args:
        base = "opc_features"
    args = [a for a in args if a not in ("layer=features", f"layer={'logits' if base == 'opc' else 'features'}")]
    return LABELS[base] + (f" [{','.join(args)}]" if args else "")
