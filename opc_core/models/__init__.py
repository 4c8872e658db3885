"""Architecture registry; importing this package registers every architecture."""

from opc_core.models import cnn, resnet, vit  # noqa: F401  (registration side effects)
from opc_core.models.base import (
    MODELS,
    ModelSpec,
    UnlearnableModel,
    count_parameters,
    create_model,
    list_models,
    register_model,
)

__all__ = [
    "MODELS",
    "ModelSpec",
    "UnlearnableModel",
    "count_parameters",
    "create_model",
    "list_models",
    "register_model",
]
