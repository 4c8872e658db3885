"""``vit_tiny``: a small patch Vision Transformer (Dosovitskiy et al. 2021) for 8-32 px images."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from opc_core.models.base import UnlearnableModel, register_model


def patch_size_for(image_size: int) -> int:
    """The largest of 4, 2, 1 that divides the image into a grid of at least 7 x 7 tokens."""
    for p in (4, 2):
        if image_size % p == 0 and image_size // p >= 7:
            return p
    return 1


class Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention and an MLP, each with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


@register_model("vit_tiny", "Small patch ViT (dim 128, 6 blocks, 4 heads, ~0.8M parameters)")
class ViTTiny(UnlearnableModel):
    """Patch embedding, a class token, learned positions, 6 pre-norm blocks; features = the normed class token."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        dim: int = 128,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__(in_channels, num_classes, image_size)
        p = patch_size_for(image_size)
        self.patch_size = p
        n_tokens = (image_size // p) ** 2
        self.patch = nn.Conv2d(in_channels, dim, p, p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def stages(self) -> list[tuple[str, nn.Module]]:
        # The final LayerNorm belongs to the last transformer block's stage (it only rescales its output).
        blocks = [(f"block{i + 1}", b) for i, b in enumerate(self.blocks)]
        blocks[-1] = (blocks[-1][0], nn.ModuleList([self.blocks[-1], self.norm]))
        return [("patch", self.patch)] + blocks

    def _blocks(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        x = self.patch(x).flatten(2).transpose(1, 2)  # (N, T, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            yield f"block{i + 1}", x
        yield "features", self.norm(x[:, 0])  # (N, dim)
