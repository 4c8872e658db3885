"""Batched, vectorised training augmentations: random crop (translate with padding) and horizontal flip.

They work on any dtype (uint8 before normalisation or float after) and on any device. Randomness comes from
``generator`` when given (drawn on the generator's device, then moved to the images'), else from the global RNG.
"""

from __future__ import annotations

import torch

_PAD_MODES = ("zeros", "reflect")


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected a batch of images (N, C, H, W), got shape {tuple(x.shape)}")


def _randint(
    high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, shape, generator=generator, device=gen_device).to(device)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _reflect(idx: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect out-of-range indices back into ``0..size-1`` (edge pixel not repeated, like ``F.pad`` reflect)."""
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= size, period - idx, idx)


def random_crop(
    x: torch.Tensor, pad: int, generator: torch.Generator | None = None, *, mode: str = "zeros"
) -> torch.Tensor:
    """Pad each image by ``pad`` pixels and crop back to its size at a random offset (one per image).

    Equivalent to ``torchvision``'s ``RandomCrop(size, padding=pad)`` applied image by image, done with index
    arithmetic and one gather for the whole batch.

    Args:
        x: Images ``(N, C, H, W)``, any dtype.
        pad: Padding in pixels (``0`` returns a copy).
        generator: Optional random generator.
        mode: ``"zeros"`` (zero padding) or ``"reflect"``.

    Returns:
        Images ``(N, C, H, W)``, same dtype and device.
    """
    _check(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {_PAD_MODES}, got {mode!r}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    n, _, h, w = x.shape
    if pad == 0 or n == 0:
        return x.clone()
    shift = _randint(2 * pad + 1, (n, 2), generator, x.device) - pad  # (N, 2), in [-pad, pad]
    rows = torch.arange(h, device=x.device)[None, :] + shift[:, :1]  # (N, H) source row of each output row
    cols = torch.arange(w, device=x.device)[None, :] + shift[:, 1:]  # (N, W) source column of each output column
    if mode == "reflect":
        rows, cols = _reflect(rows, h), _reflect(cols, w)
        valid = None
    else:
        valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (N, H, W)
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    batch = torch.arange(n, device=x.device)[:, None, None]  # (N, 1, 1)
    out = x.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    if valid is not None:
        out = torch.where(valid[..., None], out, torch.zeros((), dtype=x.dtype, device=x.device))
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image horizontally with probability 1/2.

    Args:
        x: Images ``(N, C, H, W)``, any dtype.
        generator: Optional random generator.

    Returns:
        Images ``(N, C, H, W)``, same dtype and device.
    """
    _check(x)
    flip = _rand((x.shape[0],), generator, x.device) < 0.5  # (N,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def augment(x: torch.Tensor, *, natural: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard training augmentation: random crop with ``pad = max(1, H // 8)``, plus a random flip if ``natural``.

    Args:
        x: Images ``(N, C, H, W)``, any dtype.
        natural: Natural photos (flip them); digits, clothes etc. are only translated.
        generator: Optional random generator.

    Returns:
        Augmented images ``(N, C, H, W)``, same dtype and device.
    """
    _check(x)
    out = random_crop(x, max(1, x.shape[2] // 8), generator)
    if natural:
        out = random_flip(out, generator)
    return out
