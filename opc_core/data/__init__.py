"""Datasets, forget/retain splits and augmentation for OPC Lab.

Importing this package registers the built-in datasets (see :mod:`opc_core.data.sources`).
"""

from __future__ import annotations

from opc_core.data import sources as _sources  # noqa: F401  (registers the datasets)
from opc_core.data.augment import augment, random_crop, random_flip
from opc_core.data.base import (
    DATASETS,
    DatasetMissingError,
    DatasetSpec,
    ImageData,
    clear_dataset_cache,
    data_root,
    dataset_status,
    list_datasets,
    load_dataset,
)
from opc_core.data.split import Split, draw_subset, make_split, seeded_subset

__all__ = [
    "DATASETS",
    "DatasetMissingError",
    "DatasetSpec",
    "ImageData",
    "Split",
    "augment",
    "clear_dataset_cache",
    "data_root",
    "dataset_status",
    "list_datasets",
    "load_dataset",
    "make_split",
    "random_crop",
    "random_flip",
    "draw_subset",
    "seeded_subset",
]
