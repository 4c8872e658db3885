"""What a run was asked to do: one frozen parameter dataclass per run kind, stored as-is and read back typed.

A run's ``config`` column holds exactly ``asdict(params)``; :func:`params_of` turns it back into the dataclass of the
run's kind. Every entry point (the dashboard's jobs, the CLI, the benchmark) builds the same dataclass, so the same
action leaves the same record. What a run *found* (resolved method config, metrics, attack results) goes into its
metrics, never into its parameters.
"""

from __future__ import annotations

import dataclasses
import math
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


SEED_MAX = 2**31 - 1  # the configs' seed range (numpy's and torch's seeds fit)


def _check(kind: str, rules: dict[str, tuple[Any, str]]) -> None:
    """Raise ValueError naming the first parameter whose check fails: ``{name: (ok, what it must be)}``."""
    for name, (ok, must) in rules.items():
        if not ok:
            raise ValueError(f"{kind} parameter {name} must be {must}")


def _finite(x: Any, lo: float, hi: float = math.inf, *, open_lo: bool = False) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return False
    return (x > lo if open_lo else x >= lo) and x <= hi


def _int_in(x: Any, lo: int, hi: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def _forget_ok(classes: Any, ratio: Any) -> dict[str, tuple[Any, str]]:
    return {
        "forget_classes": (
            classes is None or (isinstance(classes, list) and classes and all(_int_in(c, 0, 100_000) for c in classes)),
            "a non-empty list of class indices",
        ),
        "forget_ratio": (
            ratio is None or _finite(ratio, 0.0, 1.0, open_lo=True) and ratio < 1,
            "a fraction between 0 and 1 (exclusive)",
        ),
        "forget_classes / forget_ratio": (classes is None or ratio is None, "one or the other, not both"),
    }


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

    def __post_init__(self) -> None:
        _check(
            "train",
            {
                "epochs": (self.epochs is None or _finite(self.epochs, 0.0, 10_000, open_lo=True), "a number > 0"),
                "lr": (self.lr is None or _finite(self.lr, 0.0, 10.0, open_lo=True), "a number in (0, 10]"),
                "batch_size": (self.batch_size is None or _int_in(self.batch_size, 1, 1 << 20), "an integer >= 1"),
                "seed": (_int_in(self.seed, 0, SEED_MAX), f"an integer in [0, {SEED_MAX}]"),
            },
        )


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

    def __post_init__(self) -> None:
        _check(
            "unlearn",
            {
                "seed": (_int_in(self.seed, 0, SEED_MAX), f"an integer in [0, {SEED_MAX}]"),
                **_forget_ok(self.forget_classes, self.forget_ratio),
            },
        )

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

    def __post_init__(self) -> None:
        _check(
            "attack",
            {
                "attack": (self.attack in ("recovery", "inversion"), "recovery or inversion"),
                "run_ids": (isinstance(self.run_ids, list) and self.run_ids, "a non-empty list of run ids"),
                "n_images": (_int_in(self.n_images, 1, 256), "an integer in [1, 256]"),
            },
        )


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

    def __post_init__(self) -> None:
        _check(
            "bench",
            {
                "methods": (isinstance(self.methods, list) and self.methods, "a non-empty list"),
                "seed": (_int_in(self.seed, 0, SEED_MAX), f"an integer in [0, {SEED_MAX}]"),
                "inversion_images": (_int_in(self.inversion_images, 0, 256), "an integer in [0, 256]"),
                **_forget_ok(self.forget_classes, self.forget_ratio),
            },
        )


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
