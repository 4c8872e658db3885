"""The fixed model interface and the architecture registry.

Every architecture is ``m = g ∘ f``: ``features(x) -> (N, D)`` is the penultimate representation f, ``head(f) ->
(N, K)`` the linear classifier g, and ``forward(x) = head(features(x))``. ``features_at`` exposes the output of each
named block, so the depth view can ask how far down the forgetting goes. OPC, the recovery attacks, the embeddings
and the metrics use only these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from opc_core.env.device import model_device
from opc_core.registry import Registry


class UnlearnableModel(nn.Module):
    """Base class: subclasses define ``self.classifier`` (an ``nn.Linear``) and ``_blocks(x)``.

    ``_blocks`` yields ``(name, tensor)`` for each named block in order; the last one must be ``"features"``, the
    penultimate (N, D) representation that the classifier reads.
    """

    arch: str = ""
    classifier: nn.Linear

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        if not 8 <= image_size <= 64:
            raise ValueError(f"image_size must be between 8 and 64 pixels, got {image_size}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size

    def _blocks(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        raise NotImplementedError

    @property
    def block_names(self) -> list[str]:
        """Names of the blocks ``features_at`` can return, input to output."""
        with torch.no_grad():
            dummy = torch.zeros(1, self.in_channels, self.image_size, self.image_size, device=model_device(self))
            was_training = self.training
            self.eval()
            names = [name for name, _ in self._blocks(dummy)]
            self.train(was_training)
        return names

    def stages(self) -> list[tuple[str, nn.Module]]:
        """The feature extractor's trainable stages, input to output (the head excluded).

        EU-k and CF-k re-initialise or fine-tune the last k of these; subclasses list them in order.
        """
        raise NotImplementedError

    @property
    def feature_dim(self) -> int:
        """D, the width of the penultimate representation."""
        return self.classifier.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features f(x), shape (N, D)."""
        *_, (_, feats) = self._blocks(x)  # the last block is "features"
        return feats

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Logits g(f), shape (N, K)."""
        return self.classifier(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def features_at(
        self, x: torch.Tensor, layers: Iterable[str] | None = None, pooled: bool = True
    ) -> dict[str, torch.Tensor]:
        """Outputs of the named blocks.

        Args:
            x: input batch (N, C, H, W).
            layers: block names to return (all when None); "logits" is accepted too.
            pooled: average spatial maps (N, C, H, W) -> (N, C) and token maps (N, T, C) -> (N, C), so every entry
                is a flat vector per sample.
        """
        wanted = set(layers) if layers is not None else None
        out: dict[str, torch.Tensor] = {}
        feats = None
        for name, t in self._blocks(x):
            feats = t
            if wanted is None or name in wanted:
                out[name] = _pool(t) if pooled else t
        if wanted is None or "logits" in wanted:
            assert feats is not None
            out["logits"] = self.head(feats)
        if wanted is not None and (missing := wanted - set(out)):
            raise KeyError(f"unknown block(s) {sorted(missing)}; valid: {self.block_names + ['logits']}")
        return out

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_classes={self.num_classes}, image_size={self.image_size}"


def _pool(t: torch.Tensor) -> torch.Tensor:
    if t.dim() == 4:  # (N, C, H, W)
        return t.mean(dim=(2, 3))
    if t.dim() == 3:  # (N, T, C)
        return t.mean(dim=1)
    return t


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture."""

    name: str
    description: str
    builder: Callable[[int, int, int], UnlearnableModel]  # (in_channels, num_classes, image_size) -> model
    cpu_friendly: bool  # small enough to train interactively on a CPU


MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, description: str, cpu_friendly: bool = False):
    """Class decorator registering an architecture under ``name``."""

    def deco(cls: type[UnlearnableModel]) -> type[UnlearnableModel]:
        cls.arch = name
        MODELS.add(name, ModelSpec(name, description, cls, cpu_friendly))
        return cls

    return deco


def create_model(name: str, in_channels: int, num_classes: int, image_size: int) -> UnlearnableModel:
    """Build a freshly initialised model of a registered architecture, its 4-d weights in channels-last layout.

    Channels-last is the layout oneDNN's CPU convolutions (and cuDNN's under autocast) are fastest in: on the 2-core
    CPU it makes ``cnn_small``'s inference 1.6x and its training step 1.2x faster (``scripts/bench_preset.py``). Loading
    a state dict copies into these tensors and keeps the layout; checkpoints are saved contiguous.
    """
    return MODELS.get(name).builder(in_channels, num_classes, image_size).to(memory_format=torch.channels_last)


def list_models() -> list[str]:
    """Registered architecture names."""
    return MODELS.names()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
