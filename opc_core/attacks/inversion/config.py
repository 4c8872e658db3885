"""The settings of a gradient-inversion attack (docs/science.md §7)."""

from __future__ import annotations

from dataclasses import dataclass

from opc_core.attacks.inversion.objectives import OBJECTIVES, PRIORS
from opc_core.config import hp


@dataclass(frozen=True)
class InversionConfig:
    """Gradient-inversion settings (defaults: an interactive IG budget for cnn_small)."""

    method: str = hp("ig", "Inverting Gradients (cosine) or DLG (L2 gradient matching)", choices=tuple(OBJECTIVES))
    iterations: int = hp(200, "Optimisation steps (the reference uses 4,000-24,000)", 1, 100000)
    lr: float = hp(0.1, "Adam learning rate (decayed by 0.1 at 3/8, 5/8, 7/8 of the run)", 1e-5, 10.0)
    prior: str = hp("tv", "Image prior", choices=tuple(PRIORS))
    tv_weight: float = hp(1e-2, "Scale of the image prior (0 = none)", 0.0, 10.0)
    init: str = hp(
        "randn",
        "Starting image (normalised space): Gaussian noise or zeros (the mean image)",
        choices=("randn", "zeros"),
    )
    signed: bool = hp(True, "Adam on the sign of the image gradient (Geiping et al.)")
    snapshot_every: int = hp(
        25, "Keep a snapshot of the reconstructions every this many steps (0 = start and end)", 0, 100000
    )
    seed: int = hp(0, "Seed of the starting images (image i uses seed + i)", 0, 2**31 - 1)
    batched: bool = hp(True, "Reconstruct all images as one batch of independent problems (else one by one)")
