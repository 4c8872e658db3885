"""The optimisation loop that turns observed gradients into images (docs/science.md §7).

As in Geiping et al. 2020: Adam on the *sign* of the image gradient, lr 0.1, the normalised image boxed after every
step to the range that maps to [0, 1] pixels. The learning rate drops ×0.1 at 85% and 95% of the run (``decay="late"``,
measured here to work better on cnn_small than Geiping's 3/8, 5/8, 7/8, which stays an option). Every image starts
from the mean held-out image (``init="mean"``, default), the mean held-out image of its class (``"class_mean"``), flat
grey (``"zeros"``) or Gaussian noise seeded ``seed + i`` (``"randn"``): from noise this CNN's reconstructions settle
into shifted or split copies of the object (its gradient barely changes under 1-2 px shifts; docs/science.md §9).

Restarts (``restarts`` > 1): every image is also reconstructed from its start plus seeded Gaussian noise
(:data:`RESTART_NOISE`), and keeps the reconstruction whose final objective is lowest: the gradient mismatch the
attacker computes, never a comparison with the true image (Geiping et al.'s trials, chosen per image because the
problems are independent). On cnn_small single runs land in a poor local minimum for some images (6 dB while the same
image reaches 18 dB from another start; docs/science.md §9).

Batching: several images are reconstructed as ONE batch of independent problems (see
:func:`opc_core.attacks.inversion.objectives.batched_objective`). ``batched=False`` runs the same problems one after
another with plain autograd; it exists for the benchmark and as an independent cross-check in the tests. DLG
originally used L-BFGS; here it uses the same Adam, because L-BFGS's line search couples the images of a batch (one
step length for all problems), whereas Adam is elementwise and keeps the images independent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from opc_core.attacks.inversion.config import InversionConfig
from opc_core.attacks.inversion.objectives import OBJECTIVES, GradFn, batched_objective, make_prior, single_objective
from opc_core.attacks.inversion.threat import eval_copy, math_attention
from opc_core.data import ImageData
from opc_core.env.device import model_device
from opc_core.train.loop import StepInfo, StopFlag

Box = tuple[torch.Tensor, torch.Tensor]  # per-channel (lo, hi), each (C, 1, 1), in normalised space
Snapshots = list[tuple[int, torch.Tensor]]  # (iteration, images (N, C, H, W))
OnIter = Callable[[int, float], bool]  # (iteration, mean objective) -> keep going?


@dataclass(frozen=True)
class Problems:
    """N independent inversion problems: the attacked model (an eval copy), the known labels, the observed gradients
    (one tensor (N, *param.shape) per parameter), the valid pixel box and the image shape (C, H, W)."""

    model: nn.Module
    labels: torch.Tensor
    gradients: list[torch.Tensor]
    box: Box
    shape: tuple[int, ...]

    def repeat(self, times: int) -> Problems:
        """The same problems ``times`` over, restart-major: problem ``r * N + i`` is problem ``i``'s restart ``r``."""
        if times == 1:
            return self
        labels = self.labels.repeat(times)
        gradients = [g.repeat(times, *([1] * (g.dim() - 1))) for g in self.gradients]
        return Problems(self.model, labels, gradients, self.box, self.shape)

    def objective(self, cfg: InversionConfig, i: int | None = None) -> GradFn:
        """All problems as one batch (``i`` None), or problem ``i`` alone with plain autograd."""
        mismatch, prior = OBJECTIVES[cfg.method].mismatch, make_prior(cfg.prior, cfg.tv_weight)
        if i is None:
            return batched_objective(self.model, self.labels, self.gradients, mismatch, prior)
        y, targets = self.labels[i : i + 1], [g[i] for g in self.gradients]
        return single_objective(self.model, y, targets, mismatch, prior)


def pixel_box(data: ImageData, device: torch.device) -> Box:
    """Per-channel bounds (C, 1, 1) of normalised images whose pixels lie in [0, 1]."""
    mean = torch.tensor(data.mean, device=device).view(-1, 1, 1)
    std = torch.tensor(data.std, device=device).view(-1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


RESTART_NOISE = 0.5
"""Standard deviation (normalised units) of the Gaussian noise added to an image's start for each further restart."""


def start_images(
    problems: Problems,
    cfg: InversionConfig,
    first: int,
    n: int,
    priors: torch.Tensor | None = None,
    restart: int = 0,
) -> torch.Tensor:
    """Starting images (n, C, H, W) of problems ``first .. first + n - 1``: rows of ``priors`` (every problem's
    normalised mean image, needed by the "mean" / "class_mean" starts) or noise, where image i has its own generator
    seeded ``seed + i``, so an image starts in the same place batched or alone. Restart ``r`` > 0 adds noise of
    standard deviation :data:`RESTART_NOISE` from a generator seeded by the image and ``r``."""
    lo, hi = problems.box
    if cfg.init in ("mean", "class_mean"):
        if priors is None:
            raise ValueError(f"init={cfg.init!r} needs the mean images")
        x = priors[first : first + n].detach().cpu()
    elif cfg.init == "zeros":
        x = torch.zeros((n, *problems.shape))
    else:
        x = _noise(problems.shape, cfg.seed + first, n)
    if restart:
        x = x + RESTART_NOISE * _noise(problems.shape, cfg.seed + first + 100_003 * restart, n)
    return torch.maximum(torch.minimum(x.to(lo.device), hi), lo)


def _noise(shape: tuple[int, ...], seed: int, n: int) -> torch.Tensor:
    """Gaussian noise (n, *shape), row i from its own generator seeded ``seed + i``."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(n)])


def decay_points(cfg: InversionConfig) -> list[int]:
    """The iterations after which the learning rate drops ×0.1."""
    n = cfg.iterations
    return [n * 85 // 100, n * 95 // 100] if cfg.decay == "late" else [n * 3 // 8, n * 5 // 8, n * 7 // 8]


def optimise(
    x0: torch.Tensor, grad_fn: GradFn, cfg: InversionConfig, box: Box, on_iter: OnIter
) -> tuple[torch.Tensor, torch.Tensor, Snapshots]:
    """Adam (on the signed gradient) with step decay and boxing; ``on_iter(it, loss)`` returns False to stop.

    Returns the final images, every problem's objective per iteration (iterations, n), and snapshots (normalised
    space).
    """
    lo, hi = box
    x = x0.clone()
    opt = torch.optim.Adam([x], lr=cfg.lr)
    n = cfg.iterations
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=decay_points(cfg), gamma=0.1)
    losses: list[torch.Tensor] = []
    snaps = [(0, x.detach().clone())]
    for it in range(1, n + 1):
        gx, values = grad_fn(x.detach())  # (n, C, H, W), (n,)
        x.grad = gx.sign() if cfg.signed else gx
        opt.step()
        sched.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))  # box: valid pixel range
        losses.append(values.detach().reshape(-1).cpu())
        if (cfg.snapshot_every and it % cfg.snapshot_every == 0) or it == n:
            snaps.append((it, x.detach().clone()))
        if not on_iter(it, float(losses[-1].mean())):
            if snaps[-1][0] != it:
                snaps.append((it, x.detach().clone()))
            break
    curve = torch.stack(losses) if losses else torch.zeros((0, len(x0)))
    return x.detach(), curve, snaps


def best_restarts(x: torch.Tensor, curve: torch.Tensor, snaps: Snapshots, n: int) -> dict[str, Any]:
    """Of ``R`` restarts of ``n`` problems (restart-major rows), keep per problem the one with the lowest final
    objective; returns the chosen images, snapshots and mean objective curve, and which restart each image kept."""
    restarts = len(x) // n
    rows = torch.arange(n)
    if len(curve):
        chosen = curve[-1].view(restarts, n).argmin(0)
    else:  # stopped before the first step: the first start is all there is
        chosen = torch.zeros(n, dtype=torch.long)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.view(restarts, n, *t.shape[1:])[chosen.to(t.device), rows.to(t.device)]

    return {
        "images": pick(x),
        "snapshots": [(it, pick(s)) for it, s in snaps],
        "losses": [float(v) for v in pick(curve.T).mean(0)] if len(curve) else [],
        "iterations": len(curve),
        "restart": chosen.tolist(),
    }


@math_attention
def reconstruct(
    model: nn.Module,
    data: ImageData,
    gradients: list[torch.Tensor],
    labels: torch.Tensor,
    cfg: InversionConfig,
    *,
    stop: StopFlag | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    priors: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Invert observed per-image gradients into images (normalised space).

    Args:
        model: the attacked model (copied; run in eval mode).
        data: gives the image shape and the normalisation (for the box).
        gradients: one tensor (N, *param.shape) per parameter, as ``observed_gradients`` returns.
        labels: the known labels (N,).
        stop: checked every iteration; a set flag ends the run early with the current images.
        on_step: receives a ``StepInfo`` after every iteration (losses: {"objective": mean over images}).
        priors: the normalised starting images (N, C, H, W) of the "mean" / "class_mean" starts.

    Returns:
        ``{"images" (N, C, H, W), "snapshots" [(it, (N, C, H, W))], "losses", "iterations", "restart" (the restart
        each image kept), "stopped"}``.
    """
    work = eval_copy(model)
    device = model_device(work)
    y = labels.to(device).long()
    shape = (data.in_channels, data.image_size, data.image_size)
    problems = Problems(work, y, gradients, pixel_box(data, device), shape)
    total = cfg.iterations if cfg.batched else cfg.iterations * len(y) * cfg.restarts
    t0, state = time.perf_counter(), {"done": 0, "stopped": False}

    def on_iter(it: int, loss: float) -> bool:
        state["done"] += 1
        if on_step is not None:
            on_step(StepInfo(state["done"], total, {"objective": loss}, time.perf_counter() - t0))
        state["stopped"] = stop is not None and stop.is_set()
        return not state["stopped"]

    if cfg.batched:  # all restarts of all images as one batch of independent problems
        x0 = torch.cat([start_images(problems, cfg, 0, len(y), priors, r) for r in range(cfg.restarts)])
        many = problems.repeat(cfg.restarts)
        x, curve, snaps = optimise(x0, many.objective(cfg), cfg, problems.box, on_iter)
        out = best_restarts(x, curve, snaps, len(y))
    else:
        out = _one_by_one(problems, cfg, on_iter, lambda: state["stopped"], priors)
    return {**out, "stopped": state["stopped"]}


def _one_by_one(
    problems: Problems,
    cfg: InversionConfig,
    on_iter: OnIter,
    stopped: Callable[[], bool],
    priors: torch.Tensor | None = None,
) -> dict[str, Any]:
    """The sequential path: each image's problem (and each of its restarts) alone with plain autograd, with the seeds
    it has in the batch."""
    finals, curves, histories, kept = [], [], [], []
    for i in range(len(problems.labels)):
        runs = []
        for r in range(cfg.restarts):
            x0 = start_images(problems, cfg, i, 1, priors, r)
            if stopped():  # not started: the starting image is all there is
                break
            runs.append(optimise(x0, problems.objective(cfg, i), cfg, problems.box, on_iter))
        if not runs:
            x0 = start_images(problems, cfg, i, 1, priors)
            finals.append(x0)
            histories.append([(0, x0)])
            kept.append(0)
            continue
        best = min(range(len(runs)), key=lambda r: float(runs[r][1][-1]) if len(runs[r][1]) else float("inf"))
        x, curve, snaps = runs[best]
        finals.append(x)
        curves.append([float(v) for v in curve[:, 0]])
        histories.append(snaps)
        kept.append(best)
    return {
        "images": torch.cat(finals),
        "snapshots": _merge_snapshots(histories),
        "losses": _mean_curve(curves),
        "iterations": max((len(c) for c in curves), default=0),
        "restart": kept,
    }


def _mean_curve(curves: list[list[float]]) -> list[float]:
    """Mean over images of per-iteration losses (images that stopped early count until they stopped)."""
    out = []
    for it in range(max((len(c) for c in curves), default=0)):
        vals = [c[it] for c in curves if len(c) > it]
        out.append(sum(vals) / len(vals))
    return out


def _merge_snapshots(histories: list[Snapshots]) -> Snapshots:
    """Stack per-image snapshots; an image without a snapshot at some iteration contributes its latest one."""
    its = sorted({it for h in histories for it, _ in h})
    merged = []
    for it in its:
        frames = [[x for i, x in h if i <= it][-1] for h in histories]
        merged.append((it, torch.cat(frames)))
    return merged
