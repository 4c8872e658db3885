"""Image-similarity scores for gradient-inversion results (docs/science.md §7): PSNR and SSIM, per image.

- PSNR = 10·log10(range² / MSE). Identical images have infinite PSNR; this module caps it at ``PSNR_CAP_DB`` = 100 dB
  (an MSE floor of 1e-10·range²), so scores stay finite, JSON-safe and averageable.
- SSIM after Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004: a Gaussian window of 11 pixels with σ = 1.5, C1 = (0.01·range)², C2 = (0.03·range)²,
  'valid' filtering (no padding), averaged over positions and channels. Images smaller than the window (8x8 digits)
  use the largest odd window that fits, with σ shrunk in proportion (7 pixels, σ ≈ 0.95 for 8x8).
- No LPIPS: it needs pretrained network weights, and nothing here ever downloads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PSNR_CAP_DB = 100.0


def _as_float_batch(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float; uint8 images are scaled to [0, 1]; a single (C, H, W) image gets a batch axis."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    return x


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB, shape (N,); capped at ``PSNR_CAP_DB`` for identical images."""
    a, b = _as_float_batch(a), _as_float_batch(b).to(a.device)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = ((a - b) ** 2).flatten(1).mean(1)  # (N,)
    floor = data_range**2 * 10 ** (-PSNR_CAP_DB / 10)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(floor))


def _gaussian(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()  # (size,)


def ssim(
    a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), shape (N,); 1 for identical images."""
    a, b = _as_float_batch(a), _as_float_batch(b).to(a.device)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    _, c, h, w = a.shape
    size = min(window, h, w)
    size -= 1 - size % 2  # odd
    g = _gaussian(size, sigma * size / window, a.device)
    kh, kw = g.view(1, 1, size, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, size).repeat(c, 1, 1, 1)

    def filt(x: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid', per channel
        return F.conv2d(F.conv2d(x, kh, groups=c), kw, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = filt(a), filt(b)  # (N, C, H', W')
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).flatten(1).mean(1)  # (N,)
