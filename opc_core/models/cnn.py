"""``cnn_small``: a ~110k-parameter VGG-style CNN, fast enough to train and unlearn interactively on a CPU."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from opc_core.models.base import UnlearnableModel, register_model


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register_model(
    "cnn_small", "Small CNN (~110k parameters): 3 conv blocks + 128-d features; interactive on a CPU", cpu_friendly=True
)
class SmallCNN(UnlearnableModel):
    """Three conv blocks (32, 64, 64 channels; two 2x2 max-pools), global average pooling, a 128-d ReLU layer."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 32, feature_dim: int = 128):
        super().__init__(in_channels, num_classes, image_size)
        w = width
        self.block1 = nn.Sequential(_conv(in_channels, w), _conv(w, w), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(_conv(w, 2 * w), _conv(2 * w, 2 * w), nn.MaxPool2d(2))
        self.block3 = _conv(2 * w, 2 * w)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(2 * w, feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes)

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [("block1", self.block1), ("block2", self.block2), ("block3", self.block3), ("embed", self.embed)]

    def _blocks(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        x = self.block1(x)  # (N, w, H/2, W/2)
        yield "block1", x
        x = self.block2(x)  # (N, 2w, H/4, W/4)
        yield "block2", x
        x = self.block3(x)
        yield "block3", x
        yield "features", self.embed(x.mean(dim=(2, 3)))  # (N, D)
