"""What an inversion scores without any information from the gradient: the no-information references (§7, §9).

A reconstruction only shows leakage if it beats images the attacker could draw without the gradient. Three such images
per attacked image, scored by the same PSNR / SSIM against the true image:

- **flat grey**: every pixel at the dataset's per-channel mean value;
- **dataset mean**: the mean of the dataset's held-out (test) images, pixel by pixel;
- **class mean**: the mean held-out image of the attacked image's own class (the label is known to the attacker).

The same images serve as starting points (``InversionConfig.init`` "mean" / "class_mean"): held-out images only, never
D_f (which lies in the training set). A gallery whose original-model reconstructions do not beat the best reference by
:data:`MARGIN_DB` is **inconclusive**: the attack did not work on the model that certainly holds the images, so a low
score on an unlearned model says nothing.
"""

from __future__ import annotations

import torch

from opc_core.data import ImageData
from opc_core.metrics.image import psnr, ssim

REFERENCES = {"grey": "flat grey", "mean": "dataset mean", "class_mean": "class mean"}
"""Reference key -> display name, in display order."""
MARGIN_DB = 1.0
"""The original model's mean PSNR must beat the best reference's by this much for a conclusive gallery."""


def reference_images(data: ImageData, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference images (N, C, H, W), pixels in [0, 1] on the CPU, for images with ``labels`` (N,)."""
    test_x, test_y = data.test_x.cpu(), data.test_y.cpu()
    mean = test_x.float().mean(0) / 255.0  # (C, H, W)
    labels = labels.cpu().long()
    n = len(labels)
    class_means = {int(c): test_x[test_y == c].float().mean(0) / 255.0 for c in labels.unique()}
    grey = torch.tensor(data.mean, dtype=torch.float32).view(-1, 1, 1).expand_as(mean)
    return {
        "grey": grey.expand(n, *mean.shape).clone(),
        "mean": mean.expand(n, *mean.shape).clone(),
        "class_mean": torch.stack([class_means.get(int(y), mean) for y in labels]) if n else mean[:0],
    }


def reference_scores(data: ImageData, true: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """``{reference: {"psnr": (N,), "ssim": (N,)}}`` of each reference image against the true images (N, C, H, W)
    in [0, 1]."""
    truth = true.float().cpu()
    return {
        key: {"psnr": psnr(img, truth), "ssim": ssim(img, truth)} for key, img in reference_images(data, labels).items()
    }


def inconclusive(original_psnr: float, reference_psnr: dict[str, float]) -> bool:
    """Whether the original model's mean PSNR fails to beat every reference's mean PSNR by :data:`MARGIN_DB`."""
    best = max(reference_psnr.values(), default=float("-inf"))
    return not original_psnr >= best + MARGIN_DB
