"""Gradient inversion, the public entry point: observe, reconstruct, score (docs/science.md §7).

:func:`invert` takes the attacked model and the true forget images with their labels. It computes what the attacker
observes (:func:`opc_core.attacks.inversion.threat.observed_gradients`), reconstructs the images from those gradients
alone (:func:`opc_core.attacks.inversion.optimiser.reconstruct`), and only then compares the reconstructions with the
true images by PSNR and SSIM (:mod:`opc_core.metrics.image`): attack and scoring stay apart, as in breaching.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from opc_core.attacks.inversion.config import InversionConfig
from opc_core.attacks.inversion.optimiser import reconstruct
from opc_core.attacks.inversion.references import reference_images
from opc_core.attacks.inversion.threat import observed_gradients
from opc_core.config import validate_config
from opc_core.data import ImageData
from opc_core.env.device import model_device
from opc_core.metrics.image import psnr, ssim
from opc_core.train.loop import StepInfo, StopFlag

log = logging.getLogger(__name__)


@dataclass
class InversionResult:
    """Reconstructions, their history and their scores against the true images."""

    reconstructions: torch.Tensor  # (N, C, H, W) in [0, 1], CPU
    snapshots: list[tuple[int, torch.Tensor]]  # (iteration, (N, C, H, W) in [0, 1])
    psnr: torch.Tensor  # (N,) dB
    ssim: torch.Tensor  # (N,)
    losses: list[float]  # mean objective over the images, per iteration
    seconds: float
    labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))  # (N,)
    iterations: int = 0  # iterations done (fewer than planned when stopped)
    stopped: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    restart: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))  # (N,) restart kept


def invert(
    model: nn.Module,
    data: ImageData,
    images_uint8: torch.Tensor,
    labels: torch.Tensor,
    cfg: InversionConfig | None = None,
    *,
    stop: StopFlag | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> InversionResult:
    """Observe each image's gradient on ``model``, reconstruct the images from them, and score the reconstructions.

    Args:
        model: the attacked model (e.g. an unlearned one); never modified.
        data: the dataset the images come from (normalisation, shape).
        images_uint8: the true images (N, C, H, W), uint8.
        labels: their labels (N,), known to the attacker.
        cfg: settings (defaults when None).
        stop: a ``threading.Event``-like flag checked every iteration.
        on_step: progress callback, one ``StepInfo`` per iteration.
    """
    cfg = cfg or InversionConfig()
    validate_config(cfg)
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or len(images_uint8) != len(labels):
        raise ValueError("images_uint8 must be uint8 (N, C, H, W) with one label per image")
    t0 = time.perf_counter()
    device = model_device(model)
    x_true = data.normalize(images_uint8.to(device))  # (N, C, H, W)
    y = labels.to(device).long()
    grads = observed_gradients(model, x_true, y)
    priors = None
    if cfg.init in ("mean", "class_mean"):
        pixels = reference_images(data, labels)[cfg.init]  # (N, C, H, W) in [0, 1]
        priors = data.normalize(pixels.to(device) * 255.0)  # normalize() scales by 1/255 first
    out = reconstruct(model, data, grads, y, cfg, stop=stop, on_step=on_step, priors=priors)

    def to_pixels(x: torch.Tensor) -> torch.Tensor:
        return data.denormalize(x).clamp(0, 1).cpu()

    recon = to_pixels(out["images"])
    truth = images_uint8.float().cpu() / 255.0
    seconds = time.perf_counter() - t0
    log.info("%s inversion of %d images: %d iterations in %.1fs", cfg.method, len(y), out["iterations"], seconds)
    return InversionResult(
        reconstructions=recon,
        snapshots=[(it, to_pixels(x)) for it, x in out["snapshots"]],
        psnr=psnr(recon, truth),
        ssim=ssim(recon, truth),
        losses=out["losses"],
        seconds=seconds,
        labels=labels.cpu().long(),
        iterations=out["iterations"],
        stopped=out["stopped"],
        config=dataclasses.asdict(cfg),
        restart=torch.tensor(out["restart"], dtype=torch.int64),
    )
