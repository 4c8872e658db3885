"""The one training loop, shared by base training, retraining and every unlearning method.

A run is a loss function plugged into :func:`run_loop`: ``loss_fn(model, batch, progress) -> (loss, logs)``, where
``batch`` maps stream names ("train", "retain", "forget", ...) to ``(x, y)`` mini-batches, ``progress`` says which step
of how many this is (a :class:`Progress`, or a subclass carrying a method's state) and ``logs`` maps named loss terms
to scalars. The loop owns the mechanics: optimiser and schedule, AMP (bf16) and channels_last on CUDA, gradient
clipping, seeding, cancellation (a ``threading.Event``-like ``stop`` checked every step), divergence (a loss that
turns NaN or infinite raises :class:`NonFiniteLossError` naming the step and the term, before it reaches the weights)
and progress, which leaves only through ``on_step(StepInfo)``. It never prints, draws or touches a UI. (Shape after
karpathy/minGPT's trainer.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from opc_core.config import hp
from opc_core.data import ImageData, augment
from opc_core.env.device import model_device

Batch = dict[str, tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[nn.Module, Batch, Any], tuple[torch.Tensor, Mapping[str, Any]]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: the run diverged (the message names the step and the loss term)."""


def nonfinite_message(step: int, total: int, loss: torch.Tensor, logs: Mapping[str, Any]) -> str:
    """Which step of how many went non-finite, in which named loss term, and what to try instead."""
    values = {k: float(v) for k, v in logs.items()}
    bad = [f"{k} = {v}" for k, v in values.items() if not math.isfinite(v)]
    where = ", ".join(bad) if bad else f"total loss = {float(loss.detach())}"
    return (
        f"the loss became non-finite at step {step} of {total} ({where}): the run diverged; "
        "lower the learning rate or set grad_clip"
    )


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


@dataclass
class StepInfo:
    """What ``on_step`` receives after each reported optimiser step."""

    step: int  # 1-based count of steps done
    total: int  # planned number of steps
    losses: dict[str, float]  # named loss terms of this step
    elapsed_s: float  # wall time since the loop started
    epoch: float = 0.0  # fractional epoch over the loop's epoch stream
    lr: float = 0.0
    evals: dict[str, float] = field(default_factory=dict)  # periodic monitor values (e.g. UA/RA), when due


@dataclass
class LoopResult:
    steps: int
    total: int
    elapsed_s: float
    stopped: bool  # True when the stop flag ended the loop early


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation settings shared by every loop-based run; method configs extend it."""

    epochs: float = hp(10.0, "Passes over the epoch stream (fractions allowed)", 0.05, 500)
    batch_size: int = hp(128, "Mini-batch size per stream", 8, 4096)
    lr: float = hp(0.05, "Learning rate", 1e-6, 10.0)
    momentum: float = hp(0.9, "SGD momentum", 0.0, 0.999)
    weight_decay: float = hp(5e-4, "L2 weight decay", 0.0, 0.1)
    optimizer: str = hp("sgd", "Optimiser", choices=("sgd", "adam"))
    schedule: str = hp("cosine", "Learning-rate schedule over the run", choices=("constant", "cosine"))
    grad_clip: float = hp(0.0, "Clip the gradient norm to this value (0 = off)", 0.0, 100.0)
    augment: bool = hp(True, "Random crop (and flip for natural images) on training batches")
    seed: int = hp(0, "Seed for initialisation, batch order and augmentation", 0, 2**31 - 1)
    max_steps: int = hp(0, "Stop after this many steps (0 = no cap; for dry runs and tests)", 0, 10**7)


class Batches:
    """Endless shuffled mini-batches of an index set of a tensor dataset held on its device (no DataLoader).

    Each epoch is a ``randperm`` of the indices; batches are normalised (and optionally augmented) on the fly.
    """

    def __init__(
        self,
        data: ImageData,
        idx: torch.Tensor,
        batch_size: int,
        *,
        split: str = "train",
        augment_batches: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if len(idx) == 0:
            raise ValueError("cannot draw batches from an empty index set")
        self.data = data
        self.x = data.train_x if split == "train" else data.test_x
        self.y = data.train_y if split == "train" else data.test_y
        self.idx = idx.to(self.x.device)
        self.batch_size = min(batch_size, len(idx))
        self.augment = augment_batches
        self.gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    @property
    def steps_per_epoch(self) -> int:
        return epoch_steps(len(self.idx), self.batch_size)

    def __iter__(self) -> Batches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pos >= len(self._order):
            self._order = self.idx[torch.randperm(len(self.idx), generator=self.gen).to(self.idx.device)]
            self._pos = 0
        sel = self._order[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        x = self.data.normalize(self.x[sel])  # (B, C, H, W) float32
        if self.augment:
            x = augment(x, natural=self.data.natural, generator=self.gen)
        return x, self.y[sel]


def make_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD with momentum or Adam, per ``cfg.optimizer``."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: sgd, adam")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate before step ``step`` (0-based) of ``total``."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ValueError(f"unknown schedule {schedule!r}; valid: constant, cosine")


def epoch_steps(n: int, batch_size: int) -> int:
    """Batches in one pass over ``n`` samples drawn ``batch_size`` at a time (the last one may be short)."""
    return math.ceil(n / max(1, min(batch_size, n)))


def planned_steps(cfg: OptimConfig, steps_per_epoch: int) -> int:
    """Steps a run of ``cfg.epochs`` over an epoch stream of ``steps_per_epoch`` takes, capped by max_steps."""
    total = max(1, round(cfg.epochs * steps_per_epoch))
    return min(total, cfg.max_steps) if cfg.max_steps > 0 else total


@dataclass
class Monitor:
    """A periodic evaluation during the loop: ``fn(model, step) -> dict`` every ``every`` steps (and at the end).

    It runs in eval mode under ``torch.inference_mode``; its values reach ``on_step`` as ``StepInfo.evals``.
    """

    every: int
    fn: Callable[[nn.Module, int], dict[str, float]]


@dataclass(frozen=True)
class LoopOptions:
    """How a run is observed and what it optimises, beside the config: the callers' hooks."""

    on_step: Callable[[StepInfo], None] | None = None  # progress, every ``report_every`` steps and at the last
    stop: StopFlag | None = None  # checked before every step; when set the loop ends early and says so
    monitor: Monitor | None = None  # periodic evaluation, reported with ``on_step``
    params: Iterable[nn.Parameter] | None = None  # what to optimise (default: the model's parameters)
    report_every: int = 1  # how often losses are turned into floats and reported


@dataclass
class Progress:
    """Where a run stands; :func:`run_loop` fills it in and hands it to the loss function as its third argument."""

    step: int = 0  # 0-based index of the step being computed
    total: int = 0  # planned number of steps
    steps_per_epoch: int = 0  # batches in one pass over the epoch stream


def run_loop(
    model: nn.Module,
    loss_fn: LossFn,
    streams: Mapping[str, Batches],
    cfg: OptimConfig,
    options: LoopOptions = LoopOptions(),
    progress: Progress | None = None,
) -> LoopResult:
    """Optimise ``loss_fn`` over batches from ``streams`` for ``cfg.epochs`` passes over the first stream.

    Args:
        model: the module to train in place (already on its device).
        loss_fn: ``(model, batch, progress) -> (loss, logs)``; ``logs`` values may be tensors or floats.
        streams: named batch sources, the epoch stream first; each step draws one batch from every stream.
        cfg: optimiser, schedule, epochs (capped by max_steps) and clipping.
        options: the progress callback, stop flag, monitor and parameter subset.
        progress: the object the loss function receives (a subclass may carry a method's state); the loop sets its
            step, total and steps_per_epoch.
    """
    if not streams:
        raise ValueError("run_loop needs at least one batch stream")
    progress = progress if progress is not None else Progress()
    progress.steps_per_epoch = next(iter(streams.values())).steps_per_epoch
    progress.total = total = planned_steps(cfg, progress.steps_per_epoch)
    on_step, stop, monitor = options.on_step, options.stop, options.monitor
    device = model_device(model)
    use_amp = device.type == "cuda"
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(options.params if options.params is not None else model.parameters(), cfg)
    base_lrs = [g["lr"] for g in opt.param_groups]
    model.train()
    t0 = time.perf_counter()
    step = 0
    stopped = False
    while step < total:
        if stop is not None and stop.is_set():
            stopped = True
            break
        factor = lr_factor(cfg.schedule, step, total)
        for g, lr0 in zip(opt.param_groups, base_lrs):
            g["lr"] = lr0 * factor
        progress.step = step
        batch = {name: next(s) for name, s in streams.items()}
        if device.type == "cuda":
            batch = {k: (x.contiguous(memory_format=torch.channels_last), y) for k, (x, y) in batch.items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss, logs = loss_fn(model, batch, progress)
        if not bool(torch.isfinite(loss.detach()).all()):  # before the step: the weights stay as they were
            raise NonFiniteLossError(nonfinite_message(step + 1, total, loss, logs))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        due_eval = monitor is not None and (step % monitor.every == 0 or step == total)
        if on_step is not None and (step % options.report_every == 0 or step == total or due_eval):
            evals = _run_monitor(model, monitor, step) if due_eval else {}
            losses = {k: float(v) for k, v in logs.items()}
            epoch = step / progress.steps_per_epoch
            on_step(StepInfo(step, total, losses, time.perf_counter() - t0, epoch, opt.param_groups[0]["lr"], evals))
    if device.type == "cuda":
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    return LoopResult(step, total, time.perf_counter() - t0, stopped)


def _run_monitor(model: nn.Module, monitor: Monitor | None, step: int) -> dict[str, float]:
    if monitor is None:
        return {}
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        out = monitor.fn(model, step)
    model.train(was_training)
    return out


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global generator (model initialisation) and return a CPU generator for batch order."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
