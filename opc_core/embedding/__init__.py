"""Feature-space views (docs/science.md §8): one shared 2-D map of several models' features (``projection``) and the
per-block depth view (``depth``)."""

from opc_core.embedding.depth import block_features, depth_profile
from opc_core.embedding.projection import EmbedConfig, embed

__all__ = ["EmbedConfig", "block_features", "depth_profile", "embed"]
