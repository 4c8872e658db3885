"""Batched inference under ``torch.inference_mode``: features and logits of index sets of a dataset."""

from __future__ import annotations

import torch
from torch import nn

from opc_core.data import ImageData
from opc_core.env.device import model_device


def _images(data: ImageData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "train":
        return data.train_x, data.train_y
    if split == "test":
        return data.test_x, data.test_y
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


@torch.inference_mode()
def features_and_logits(
    model: nn.Module, data: ImageData, idx: torch.Tensor | None = None, split: str = "train", batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (N, D) and logits (N, K) of ``data``'s images ``idx`` (all when None), float32 on CPU."""
    x_all, _ = _images(data, split)
    device = model_device(model)
    idx = torch.arange(len(x_all)) if idx is None else idx.cpu()
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for start in range(0, len(idx), batch_size):
        sel = idx[start : start + batch_size].to(x_all.device)
        x = data.normalize(x_all[sel]).to(device)
        f = model.features(x)
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    model.train(was_training)
    if not feats:
        k = getattr(model, "num_classes", 0)
        return torch.zeros(0, getattr(model, "feature_dim", 0)), torch.zeros(0, k)
    return torch.cat(feats), torch.cat(logits)


def logits_of(
    model: nn.Module, data: ImageData, idx: torch.Tensor | None = None, split: str = "train", batch_size: int = 1024
) -> torch.Tensor:
    """Logits (N, K) of ``data``'s images ``idx``."""
    return features_and_logits(model, data, idx, split, batch_size)[1]


def labels_of(data: ImageData, idx: torch.Tensor | None = None, split: str = "train") -> torch.Tensor:
    """Labels (N,) on CPU."""
    y = _images(data, split)[1].cpu()
    return y if idx is None else y[idx.cpu()]


def accuracy(model: nn.Module, data: ImageData, idx: torch.Tensor | None = None, split: str = "train") -> float:
    """Top-1 accuracy in percent (0-100) on ``data``'s images ``idx``; NaN for an empty set."""
    logits = logits_of(model, data, idx, split)
    if len(logits) == 0:
        return float("nan")
    return 100.0 * (logits.argmax(1) == labels_of(data, idx, split)).float().mean().item()
