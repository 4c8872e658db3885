"""What a run was asked to do: one frozen parameter dataclass per run kind, stored as-is and read back typed.

A run's ``config`` column holds exactly ``asdict(params)``; :func:`params_of` turns it back into the dataclass of the
run's kind. Every entry point (the dashboard's jobs, the CLI, the benchmark) builds the same dataclass, so the same
action leaves the same record. What a run *found* (resolved method config, metrics, attack results) goes into its
metrics, never into its parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opc_core.registry import Registry

RECORDS: Registry[type] = Registry("run kind")


def record(kind: str):
    """Class decorator: register a frozen parameter dataclass as the record of run kind ``kind``."""

    def deco(cls: type) -> type:
        RECORDS.add(kind, cls)
        cls.kind = kind
        return cls

    return deco


def make_params(kind: str, values: Mapping[str, Any] | Any) -> Any:
    """The typed parameters of kind ``kind`` from a mapping (or an instance, returned as is).

    Unknown keys are an error that lists the valid ones (a misspelt setting never vanishes silently).
    """
    cls = RECORDS.get(kind)
    if isinstance(values, cls):
        return values
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        raise TypeError(f"a {kind} run takes {cls.__name__}, got {type(values).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown {kind} parameter(s) {', '.join(unknown)}; valid: {', '.join(names)}")
    return cls(**dict(values))


def params_of(kind: str, config: Mapping[str, Any]) -> Any:
    """Read a stored ``config`` back as the dataclass of ``kind`` (what :attr:`Run.params` returns)."""
    return make_params(kind, config)


def params_dict(params: Any) -> dict[str, Any]:
    """The stored form of typed parameters."""
    return dataclasses.asdict(params)


def forget_text(forget_classes, forget_ratio) -> str:
    """What a run forgets, in words: ``classes 0,1,2`` or ``10% random``."""
    if forget_classes:
        return "classes " + ",".join(str(c) for c in forget_classes)
    if forget_ratio:
        return f"{forget_ratio:.0%} random"
    return "classes (default)"


@record("train")
@dataclass(frozen=True)
class TrainParams:
    """Train a base model from scratch and save it as a checkpoint (default: the local zoo)."""

    dataset: str
    model: str
    epochs: float | None = None  # None: the training recipe's default
    lr: float | None = None
    batch_size: int | None = None
    seed: int = 0
    out: str | None = None  # checkpoint path stem or folder
    data_root: str | None = None


@record("unlearn")
@dataclass(frozen=True)
class UnlearnParams:
    """One unlearning method on a pretrained model, then its metrics."""

    dataset: str
    model: str
    method: str
    label: str | None = None  # the variant's name, e.g. "opc[layer=features]" (default: the method)
    checkpoint: str | None = None  # the original model (default: the zoo's best for dataset/model)
    forget_classes: list[int] | None = None
    forget_ratio: float | None = None
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # method settings over the dataset's preset
    mia: bool = True
    data_root: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.method


@record("attack")
@dataclass(frozen=True)
class AttackParams:
    """An attack on stored unlearn runs: the recovery attacks (one run) or gradient inversion (one or more)."""

    attack: str  # "recovery" | "inversion"
    run_ids: list[str]
    n_images: int = 8  # inversion: forget images to reconstruct
    settings: dict[str, Any] = field(default_factory=dict)


@record("bench")
@dataclass(frozen=True)
class BenchParams:
    """The shallow-vs-deep benchmark: several methods from one original model and split, then every attack."""

    dataset: str = "fashion_mnist_small"
    model: str = "cnn_small"
    methods: list[str] = field(default_factory=lambda: ["opc", "ft", "ga", "rl"])
    forget_classes: list[int] | None = None
    forget_ratio: float | None = None
    seed: int = 0
    inversion_images: int = 4
    inversion_settings: dict[str, Any] = field(default_factory=dict)
    mia: bool = True


def upgrade_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The typed form of a config stored before records were typed (schema 1), or None when it cannot be read.

    Schema 1 stored four shapes: ``{"task", "target", "params"}`` (jobs), a flat dict (CLI unlearn), ``{"method",
    "label", "dataset", "model", "bench"}`` (benchmark children) and ``{"attack", "run_ids", "settings"}`` (CLI).
    """
    if kind not in RECORDS:
        return None
    values = dict(config.get("params", config)) if isinstance(config.get("params"), Mapping) else dict(config)
    if kind == "unlearn" and isinstance(values.get("config"), Mapping) and "overrides" not in values:
        values["overrides"] = {}  # a CLI run stored its resolved config: that is a result, kept in its metrics
    if kind == "attack" and "run_ids" not in values and "run_id" in values:
        values["run_ids"] = [values["run_id"]]
    names = {f.name for f in dataclasses.fields(RECORDS.get(kind))}
    try:
        return params_dict(make_params(kind, {k: v for k, v in values.items() if k in names}))
    except (TypeError, ValueError):
        return None
