"""Gradient inversion (docs/science.md §7): rebuild forget images from the attacked model's gradients.

One job per module, after JonasGeiping/breaching: :mod:`.threat` (what the attacker observes), :mod:`.objectives`
(gradient mismatches and image priors), :mod:`.optimiser` (the loop), :mod:`.attack` (the public :func:`invert`, which
also scores with PSNR/SSIM from :mod:`opc_core.metrics.image`), and :mod:`.gallery` (the result file of a job).
"""

from opc_core.attacks.inversion.attack import InversionResult, invert
from opc_core.attacks.inversion.config import InversionConfig, estimate_seconds
from opc_core.attacks.inversion.gallery import Gallery, Reconstruction
from opc_core.attacks.inversion.objectives import (
    OBJECTIVES,
    PRIORS,
    Objective,
    TotalVariation,
    cosine_mismatch,
    l2_mismatch,
    make_prior,
)
from opc_core.attacks.inversion.optimiser import reconstruct
from opc_core.attacks.inversion.threat import observed_gradients

__all__ = [
    "OBJECTIVES",
    "PRIORS",
    "Gallery",
    "InversionConfig",
    "InversionResult",
    "Objective",
    "Reconstruction",
    "TotalVariation",
    "cosine_mismatch",
    "estimate_seconds",
    "invert",
    "l2_mismatch",
    "make_prior",
    "observed_gradients",
    "reconstruct",
]
