"""``resnet18``: the CIFAR-style ResNet-18 (He et al. 2016) used by the OPC paper, 3x3 stem and no max-pool."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.models.base import UnlearnableModel, register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@register_model("resnet18", "CIFAR-style ResNet-18 (11M parameters), the paper's architecture; use a GPU")
class ResNet18(UnlearnableModel):
    """Stem conv 3x3/64, four stages of two basic blocks (64, 128, 256, 512), global average pooling -> 512-d."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__(in_channels, num_classes, image_size)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        widths, cin, stages = (64, 128, 256, 512), 64, []
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.classifier = nn.Linear(512, num_classes)

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [(n, getattr(self, n)) for n in ("stem", "layer1", "layer2", "layer3", "layer4")]

    def _blocks(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        x = self.stem(x)
        yield "stem", x
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            yield name, x
        yield "features", x.mean(dim=(2, 3))  # (N, 512)
