"""The settings of a gradient-inversion attack (docs/science.md §7)."""

from __future__ import annotations

from dataclasses import dataclass

from opc_core.attacks.inversion.objectives import OBJECTIVES, PRIORS
from opc_core.config import hp


@dataclass(frozen=True)
class InversionConfig:
    """Gradient-inversion settings. Defaults: the settings measured to work on cnn_small (docs/science.md §9): IG from
    the dataset's mean image, TV 1e-2, lr 0.1, signed Adam, decay ×0.1 at 85% and 95% of 1,000 iterations, 2 restarts
    per image kept by the lower objective (twice the cost of one run; on the original model better than one run of
    1,000 on 3 of 4 class triples and level on the fourth, where 2 × 500 at the same cost was only level on average)."""

    method: str = hp("ig", "Inverting Gradients (cosine) or DLG (L2 gradient matching)", choices=tuple(OBJECTIVES))
    iterations: int = hp(
        1000,
        "Optimisation steps per restart (the reference uses 4,000-24,000; one run of 2,000 added nothing here)",
        1,
        100000,
    )
    lr: float = hp(0.1, "Adam learning rate (decayed by 0.1 at the decay points)", 1e-5, 10.0)
    decay: str = hp(
        "late",
        "When the learning rate drops ×0.1: 'late' = at 85% and 95% of the run (measured here), 'geiping' = at 3/8, "
        "5/8 and 7/8 (Geiping et al.)",
        choices=("late", "geiping"),
    )
    prior: str = hp("tv", "Image prior", choices=tuple(PRIORS))
    tv_weight: float = hp(1e-2, "Scale of the image prior (0 = none)", 0.0, 10.0)
    init: str = hp(
        "mean",
        "Starting image: 'mean' = the mean held-out image (default), 'class_mean' = the mean held-out image of the "
        "known label (compare with the class-mean reference), 'randn' = Gaussian noise, 'zeros' = flat grey",
        choices=("mean", "class_mean", "randn", "zeros"),
    )
    signed: bool = hp(True, "Adam on the sign of the image gradient (Geiping et al.)")
    snapshot_every: int = hp(
        50, "Keep a snapshot of the reconstructions every this many steps (0 = start and end)", 0, 100000
    )
    seed: int = hp(0, "Seed of the starting images (image i uses seed + i)", 0, 2**31 - 1)
    restarts: int = hp(
        2,
        "Starts per image: the first from `init`, each further one from it plus seeded noise; every image keeps the "
        "reconstruction whose gradient matches best (the attacker's own objective, never the true image)",
        1,
        16,
    )
    batched: bool = hp(True, "Reconstruct all images as one batch of independent problems (else one by one)")


MEASURED_MS_PER_ITERATION: dict[str, tuple[float, float]] = {"cnn_small": (23.0, 4.9)}
"""Architecture -> (a, b): one batched iteration of ``p`` independent problems costs about a + b·p milliseconds on the
2-core CPU at 2 threads with nothing else running, the whole inversion included (cnn_small, 28×28, 8 images:
``python scripts/bench_attacks.py --threads 2`` measured 62.5 s with 1 restart and 101.7 s with 2). Other
architectures are not measured here (a ResNet-18 double backward costs about 25 times cnn_small's)."""


def estimate_seconds(cfg: InversionConfig, n_images: int, arch: str) -> float | None:
    """The wall time of one model's inversion of ``n_images`` images with ``cfg`` on the 2-core CPU, from
    :data:`MEASURED_MS_PER_ITERATION`; None for an architecture or a sequential run that was not measured."""
    if arch not in MEASURED_MS_PER_ITERATION or not cfg.batched or n_images < 1:
        return None
    a, b = MEASURED_MS_PER_ITERATION[arch]
    return cfg.iterations * (a + b * n_images * cfg.restarts) / 1000.0
