"""The unlearning-method registry and the harness that runs every method's loss in the shared loop.

A method is its ``Config`` (a frozen dataclass extending :class:`UnlearnConfig`, from which the dashboard builds its
widgets) and its loss ``loss(model, batch, ctx) -> (loss, logs)``, registered with :func:`register_method` together
with a :class:`Plan`: the batch streams it draws each step (the first defines an epoch) and, only where the method
truly needs one, a preparation hook that returns the method's typed state (a teacher, a saliency mask, the trainable
top), a finishing hook, a fresh start (retrain) or different optimiser settings. The registry turns the pair into the
one signature every caller uses: ``spec(model, data, split, cfg, *, on_step=None, stop=None, monitor=None) ->
nn.Module``. A method works on a copy and never touches data it was not given.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from opc_core.config import build_config, describe_fields, validate_config
from opc_core.data import ImageData, Split
from opc_core.env.device import model_device
from opc_core.methods.common import random_twin, unfreeze, working_copy
from opc_core.registry import Registry
from opc_core.train.loop import (
    Batch,
    Batches,
    LoopOptions,
    Monitor,
    OptimConfig,
    Progress,
    StepInfo,
    StopFlag,
    epoch_steps,
    hp,
    planned_steps,
    run_loop,
    seed_everything,
)

__all__ = [
    "METHODS",
    "MethodSpec",
    "Plan",
    "UnlearnConfig",
    "UnlearnContext",
    "describe_fields",
    "get_method",
    "list_methods",
    "load_presets",
    "make_config",
    "register_method",
    "validate_config",
]

PRESETS_FILE = Path(__file__).with_name("presets.json")
S = TypeVar("S")


@dataclass(frozen=True)
class UnlearnConfig(OptimConfig):
    """Optimisation defaults for unlearning (reference code of most baselines: SGD, lr 0.01, momentum 0.9)."""

    epochs: float = hp(5.0, "Passes over the epoch stream (retain set unless the method says otherwise)", 0.05, 200)
    batch_size: int = hp(
        128, "Mini-batch size (of the retain batch; the forget batch is forget_batch times it)", 8, 4096
    )
    lr: float = hp(0.01, "Learning rate", 1e-6, 10.0)
    schedule: str = hp("constant", "Learning-rate schedule", choices=("constant", "cosine"))
    augment: bool = hp(False, "Random crop (and flip for natural images) on the batches")
    forget_batch: float = hp(
        1.0,
        "Forget batch size as a fraction of the retain batch, for methods that draw both each step (1 = as large; "
        "smaller makes each step cheaper and the forget set is revisited less often)",
        0.01,
        1.0,
    )


@dataclass(kw_only=True)
class UnlearnContext(Progress, Generic[S]):
    """What a method's loss and hooks see besides the model and the batch; the loop keeps step and total current."""

    cfg: Any  # the method's config
    data: ImageData  # on the model's device
    split: Split
    generator: torch.Generator  # the run's seeded CPU generator: batch order, augmentation, the method's random draws
    state: S | None = None  # what the method's prepare hook returned


MethodLoss = Callable[[nn.Module, Batch, UnlearnContext], tuple[torch.Tensor, Mapping[str, Any]]]


@dataclass(frozen=True)
class Plan:
    """How the harness runs a method's loss; the defaults fit a loss over one retain and one forget batch per step."""

    streams: tuple[str, ...] = ("retain", "forget")  # drawn each step, in this order; the first defines an epoch
    prepare: Callable[[nn.Module, UnlearnContext], Any] | None = None  # working model -> the method's typed state
    finish: Callable[[nn.Module, Any], None] | None = None  # after the loop, even a failed one: undo what prepare did
    from_scratch: bool = False  # train a fresh initialisation of the architecture instead of a copy (retrain)
    optim: Callable[[Any], OptimConfig] | None = None  # the optimiser's settings where they differ from the config


@dataclass(frozen=True)
class MethodSpec:
    """A registered unlearning method: its config, its loss and the plan that runs it."""

    name: str
    description: str
    config: type  # a frozen dataclass, subclass of UnlearnConfig
    loss: MethodLoss
    plan: Plan = Plan()
    class_wise_only: bool = False
    paper: str = ""

    @property
    def epoch_stream(self) -> str:
        """The set whose size defines an epoch: "retain" for most methods, "forget" for those that train on it alone."""
        return self.plan.streams[0]

    def planned_steps(self, cfg: Any, split: Split) -> int:
        """The optimiser steps a run of ``cfg`` on ``split`` takes (epochs over the epoch stream, capped by max_steps):
        what the loop runs unless stopped."""
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
        """Unlearn ``split``'s forget set from a copy of ``model``; returns the copy (``model`` is left unchanged)."""
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
        return run_method(self, model, data, split, cfg, LoopOptions(on_step=on_step, stop=stop, monitor=monitor))

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
    name: str, config: type, description: str, *, plan: Plan = Plan(), class_wise_only: bool = False, paper: str = ""
):
    """Decorator registering a loss ``loss(model, batch, ctx) -> (loss, logs)`` as method ``name``, run by ``plan``."""
    if not (dataclasses.is_dataclass(config) and issubclass(config, UnlearnConfig)):
        raise TypeError(f"config of method {name!r} must be a dataclass extending UnlearnConfig")
    if not plan.streams or any(s not in STREAMS for s in plan.streams):
        raise ValueError(f"method {name!r}: streams must be a non-empty choice of {list(STREAMS)}, got {plan.streams}")

    def deco(loss: MethodLoss) -> MethodLoss:
        METHODS.add(name, MethodSpec(name, description, config, loss, plan, class_wise_only, paper))
        return loss

    return deco


def get_method(name: str) -> MethodSpec:
    """The registered method; an unknown name raises KeyError listing the valid ones."""
    return METHODS.get(name)


def list_methods() -> list[str]:
    """Registered method names, in registration order."""
    return METHODS.names()


# --- configs ---------------------------------------------------------------------------------------------------------
def load_presets() -> dict[str, dict[str, dict[str, Any]]]:
    """``{dataset: {method: {field: value}}}`` from presets.json (tuned defaults per dataset). A dataset whose entry is
    another dataset's name uses that one's presets (the full Fashion-MNIST those of its embedded subset)."""
    if not PRESETS_FILE.exists():
        return {}
    raw = {k: v for k, v in json.loads(PRESETS_FILE.read_text()).items() if not k.startswith("_")}
    return {k: raw.get(v, {}) if isinstance(v, str) else v for k, v in raw.items()}


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
STREAMS = {"retain": ("retain_idx", "train"), "forget": ("forget_idx", "train"), "cal": ("cal_idx", "test")}
"""Batch streams a method may draw: the split's index set and the part of the dataset it indexes."""


def stream_indices(split: Split, name: str) -> tuple[torch.Tensor, str]:
    """The indices stream ``name`` draws from and the part of the dataset ("train" or "test") they index."""
    if name not in STREAMS:
        raise KeyError(f"unknown stream {name!r}; valid: {list(STREAMS)}")
    attr, part = STREAMS[name]
    return getattr(split, attr), part


def stream_batch_size(cfg: Any, name: str, epoch_stream: str) -> int:
    """The batch size of stream ``name``: the config's, except a forget stream drawn beside another epoch stream,
    which takes ``forget_batch`` of it (at least one sample). A method that trains on the forget set alone keeps
    the full batch: its forget stream defines the epoch."""
    if name != "forget" or epoch_stream == "forget":
        return cfg.batch_size
    return max(1, round(cfg.batch_size * cfg.forget_batch))


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


def run_method(
    spec: MethodSpec, original: nn.Module, data: ImageData, split: Split, cfg: Any, options: LoopOptions
) -> nn.Module:
    """Run ``spec``'s loss in the shared loop on a copy of ``original`` (or a fresh model); returns it in eval mode.

    Order: seed (global RNG and the run's generator), working model, batch streams, prepare, loop, finish. A
    re-initialisation in ``prepare`` therefore depends on the seed alone.
    """
    plan = spec.plan
    data = data.to(model_device(original))
    gen = seed_everything(cfg.seed)
    work = random_twin(original) if plan.from_scratch else working_copy(original)
    streams = {}
    for name in plan.streams:
        idx, part = stream_indices(split, name)
        size = stream_batch_size(cfg, name, plan.streams[0])
        streams[name] = Batches(data, idx, size, split=part, augment_batches=cfg.augment, generator=gen)
    ctx: UnlearnContext = UnlearnContext(cfg=cfg, data=data, split=split, generator=gen)
    ctx.state = plan.prepare(work, ctx) if plan.prepare is not None else None
    try:
        run_loop(work, spec.loss, streams, plan.optim(cfg) if plan.optim else cfg, options, ctx)
    finally:
        if plan.finish is not None:
            plan.finish(work, ctx.state)
    return unfreeze(work).eval()
