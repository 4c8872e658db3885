"""The unlearning-method registry and the shared harness every loop-based method plugs into.

One signature for all methods: ``unlearn(model, data, split, cfg, *, on_step=None, stop=None, monitor=None) ->
nn.Module``. A method works on a copy and never touches data it was not given. Most methods are a loss function
plugged into :func:`loop_unlearn`; only closed-form or one-shot ones write their own loop. Each method's ``Config`` is a
frozen dataclass extending :class:`UnlearnConfig`; the dashboard builds its widgets from ``dataclasses.fields``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from opc_core.config import build_config, describe_fields, validate_config
from opc_core.data import ImageData, Split
from opc_core.env.device import model_device
from opc_core.registry import Registry
from opc_core.train.loop import (
    Batches,
    LossFn,
    Monitor,
    OptimConfig,
    StepInfo,
    StopFlag,
    epoch_steps,
    hp,
    planned_steps,
    run_loop,
    seed_everything,
)

PRESETS_FILE = Path(__file__).with_name("presets.json")


@dataclass(frozen=True)
class UnlearnConfig(OptimConfig):
    """Optimisation defaults for unlearning (reference code of most baselines: SGD, lr 0.01, momentum 0.9)."""

    epochs: float = hp(5.0, "Passes over the epoch stream (retain set unless the method says otherwise)", 0.05, 200)
    batch_size: int = hp(128, "Mini-batch size (retain and forget batches alike)", 8, 4096)
    lr: float = hp(0.01, "Learning rate", 1e-6, 10.0)
    schedule: str = hp("constant", "Learning-rate schedule", choices=("constant", "cosine"))
    augment: bool = hp(False, "Random crop (and flip for natural images) on the batches")


Unlearner = Callable[..., nn.Module]


@dataclass(frozen=True)
class MethodSpec:
    """A registered unlearning method."""

    name: str
    description: str
    config: type  # a frozen dataclass, subclass of UnlearnConfig
    fn: Unlearner
    class_wise_only: bool = False
    paper: str = ""
    epoch_stream: str = "retain"  # the set whose size defines an epoch: "retain" or "forget"

    def planned_steps(self, cfg: Any, split: Split) -> int:
        """The number of optimiser steps a run of ``cfg`` on ``split`` takes (epochs over the epoch stream, capped by
        max_steps): what the loop will run unless stopped."""
        n = len(stream_indices(split, self.epoch_stream)[0])
        return planned_steps(cfg, epoch_steps(n, cfg.batch_size))

    def __call__(
        self,
        model: nn.Module,
        data: ImageData,
        split: Split,
        cfg: Any = None,
        *,
        on_step: Callable[[StepInfo], None] | None = None,
        stop: StopFlag | None = None,
        monitor: Monitor | None = None,
    ) -> nn.Module:
        cfg = cfg if cfg is not None else self.config()
        if not isinstance(cfg, self.config):
            raise TypeError(f"{self.name} expects a {self.config.__qualname__}, got {type(cfg).__qualname__}")
        validate_config(cfg)
        if self.class_wise_only and split.mode != "class":
            raise ValueError(
                f"method {self.name!r} only supports class-wise forgetting (it needs whole forget "
                f"classes); choose forget classes instead of a random fraction"
            )
        check_split(data, split)
        return self.fn(model, data, split, cfg, on_step=on_step, stop=stop, monitor=monitor)

    def describe(self) -> dict[str, Any]:
        """JSON-safe description: name, description, paper, class_wise_only, and each config field."""
        return {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "class_wise_only": self.class_wise_only,
            "config": describe_fields(self.config),
        }


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(
    name: str,
    config: type,
    description: str,
    *,
    class_wise_only: bool = False,
    paper: str = "",
    epoch_stream: str = "retain",
):
    """Decorator registering ``fn(model, data, split, cfg, *, on_step, stop, monitor)`` as method ``name``."""
    if not (dataclasses.is_dataclass(config) and issubclass(config, UnlearnConfig)):
        raise TypeError(f"config of method {name!r} must be a dataclass extending UnlearnConfig")

    def deco(fn: Unlearner) -> Unlearner:
        METHODS.add(name, MethodSpec(name, description, config, fn, class_wise_only, paper, epoch_stream))
        return fn

    return deco


def get_method(name: str) -> MethodSpec:
    """The registered method; an unknown name raises KeyError listing the valid ones."""
    return METHODS.get(name)


def list_methods() -> list[str]:
    """Registered method names, in registration order."""
    return METHODS.names()


# --- configs ---------------------------------------------------------------------------------------------------------
def load_presets() -> dict[str, dict[str, dict[str, Any]]]:
    """``{dataset: {method: {field: value}}}`` from presets.json (tuned defaults per dataset)."""
    if not PRESETS_FILE.exists():
        return {}
    return {k: v for k, v in json.loads(PRESETS_FILE.read_text()).items() if not k.startswith("_")}


def make_config(method: str, overrides: Mapping[str, Any] | Iterable[str] = (), dataset: str | None = None):
    """Build a method's config: field defaults, then the dataset's preset, then ``overrides``.

    Args:
        method: registered method name.
        overrides: a mapping, or ``key=value`` strings as given on the command line.
        dataset: apply the tuned preset for this dataset when one exists.
    """
    spec = get_method(method)
    preset = load_presets().get(dataset or "", {}).get(method, {})
    return build_config(spec.config, preset, overrides, owner=f"method {method!r}")


# --- the harness ------------------------------------------------------------------------------------------------------
def check_split(data: ImageData, split: Split) -> None:
    """Refuse a split that does not index this dataset."""
    n_train, n_test = len(data.train_y), len(data.test_y)
    for name, idx, n in (
        ("forget", split.forget_idx, n_train),
        ("retain", split.retain_idx, n_train),
        ("test", split.test_idx, n_test),
        ("calibration", split.cal_idx, n_test),
    ):
        if len(idx) and (int(idx.max()) >= n or int(idx.min()) < 0):
            raise ValueError(f"split's {name} indices exceed the dataset ({n} images): wrong dataset for this split?")
    if len(split.forget_idx) == 0 or len(split.retain_idx) == 0:
        raise ValueError("split must have non-empty forget and retain sets")


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy with gradients enabled, so the caller's model is never changed."""
    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(True)
    return clone


def stream_indices(split: Split, name: str) -> tuple[torch.Tensor, str]:
    """The indices a batch stream draws from and the part of the dataset they index: "retain" and "forget" (training
    images) or "cal" (the calibration half of the test images)."""
    sources = {
        "retain": (split.retain_idx, "train"),
        "forget": (split.forget_idx, "train"),
        "cal": (split.cal_idx, "test"),
    }
    if name not in sources:
        raise KeyError(f"unknown stream {name!r}; valid: {sorted(sources)}")
    return sources[name]


def streams_for(
    data: ImageData, split: Split, cfg: UnlearnConfig, names: Iterable[str], generator: torch.Generator
) -> dict[str, Batches]:
    """Batch streams over the split's sets (see :func:`stream_indices`), in the order of ``names``."""
    out = {}
    for name in names:
        idx, part = stream_indices(split, name)
        out[name] = Batches(data, idx, cfg.batch_size, split=part, augment_batches=cfg.augment, generator=generator)
    return out


def loop_unlearn(
    model: nn.Module,
    data: ImageData,
    split: Split,
    cfg: UnlearnConfig,
    loss_fn: LossFn,
    *,
    streams: Iterable[str] = ("retain", "forget"),
    epoch_stream: str = "retain",
    on_step: Callable[[StepInfo], None] | None = None,
    stop: StopFlag | None = None,
    monitor: Monitor | None = None,
    params: Callable[[nn.Module], Iterable] | None = None,
    state: dict | None = None,
    prepare: Callable[[nn.Module, dict], None] | None = None,
) -> nn.Module:
    """Run ``loss_fn`` in the shared loop on a copy of ``model``; returns the unlearned copy.

    Args:
        streams: which batch streams each step draws ("retain", "forget", "cal").
        epoch_stream: the stream whose size defines an epoch (``cfg.epochs`` passes over it).
        params: picks the parameters to optimise from the working copy (default: all).
        state: initial state handed to ``loss_fn`` (e.g. a frozen teacher).
        prepare: called once with the working copy and the state before the loop (e.g. to re-initialise layers).
    """
    work = working_copy(model)
    data = data.to(model_device(work))
    gen = seed_everything(cfg.seed)
    batches = streams_for(data, split, cfg, dict.fromkeys([*streams, epoch_stream]), gen)  # declared order
    state = dict(state or {})
    state.update(data=data, split=split, generator=gen)
    if prepare is not None:
        prepare(work, state)
    spe = batches[epoch_stream].steps_per_epoch
    total = planned_steps(cfg, spe)
    run_loop(
        work,
        loss_fn,
        batches,
        cfg,
        total=total,
        params=params(work) if params else None,
        on_step=on_step,
        stop=stop,
        monitor=monitor,
        state=state,
        steps_per_epoch=spe,
    )
    return work.eval()
