"""Gradient inversion: reconstruct forget images from the attacked model's gradients (SCIENCE.md §7).

Threat model (after JonasGeiping/breaching): the attacker sees, for each forget image x with known label y, the
gradient ∇_θ CE(m(x), y) of the attacked model computed on a batch of size 1, over *all* parameters θ, and knows the
model. :func:`observed_gradients` produces those gradients; :func:`reconstruct` inverts them; :func:`invert` does both
and scores the reconstructions with PSNR and SSIM against the true images.

Methods (``InversionConfig.method``):

- ``"ig"``, Inverting Gradients (Geiping, Bauermeister, Dröge & Moeller, NeurIPS 2020, Eq. 4):
  min_x̂ 1 − ⟨∇_θ L(x̂, y), g⟩ / (‖∇_θ L(x̂, y)‖ ‖g‖) + α_TV · TV(x̂), the cosine taken over the concatenation of all
  parameter gradients.
- ``"dlg"``, Deep Leakage from Gradients (Zhu, Liu & Han, NeurIPS 2019, Eq. 4): min_x̂ ‖∇_θ L(x̂, y) − g‖², same
  prior. The labels are known, so only the image is optimised (as in iDLG). DLG used L-BFGS; here it uses the same
  Adam as IG because L-BFGS's line search couples the images of a batch (one step length for all problems), whereas
  Adam is elementwise and keeps the images independent.

Optimisation as in Geiping et al.: Adam on the *sign* of the image gradient, lr 0.1, MultiStepLR decay by 0.1 at 3/8,
5/8 and 7/8 of the iterations, the normalised image boxed after every step to the range that maps to [0, 1] pixels.
The reference runs 4,000–24,000 iterations; the interactive default here is 200, which is rough: on the shipped
Fashion-MNIST cnn_small, 8 forget images after 200 iterations score about the mean image's PSNR (≈ 8-9 dB), while
one of them reached 21.6 dB after 500 and 23.6 dB / SSIM 0.93 after 2,000 iterations. Snapshots show the progress.

Batching: several images are reconstructed as ONE batch of independent problems. Each problem's gradient is a
per-sample gradient of a functional copy of the model (``torch.func.vmap`` over ``grad`` of ``functional_call``),
and the image gradient is taken through it (double backward), so image i's update depends on image i only. The model
runs in **eval mode**, for the observed gradients and the reconstruction alike: BatchNorm uses its running statistics,
because batch statistics would couple the images of a batch (and are degenerate for a batch of one). Attention runs
on the math kernel, the only one with a double backward. ``batched=False`` runs the same problems one after another
with plain autograd; it exists for the benchmark and as an independent cross-check in the tests.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from opc_core.data import ImageData
from opc_core.env.device import model_device
from opc_core.metrics.image import psnr, ssim
from opc_core.train.loop import StepInfo, StopFlag, hp

log = logging.getLogger(__name__)


# --- priors and gradient-matching losses ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TotalVariation:
    """Anisotropic total variation (Geiping et al. 2020): mean |horizontal| + mean |vertical| pixel differences.

    Works on one image (C, H, W) -> scalar or a batch (N, C, H, W) -> (N,); multiplied by ``scale``.
    """

    scale: float = 1e-2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(-3, -2, -1))
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(-3, -2, -1))
        return self.scale * (dx + dy)


PRIORS: dict[str, Any] = {"tv": TotalVariation(scale=1e-2)}
"""Image priors by name, each a small object with a ``scale`` (breaching's ``regularizer_lookup``)."""


def make_prior(name: str, scale: float) -> Any:
    """The prior ``name`` with its ``scale`` replaced."""
    if name not in PRIORS:
        raise KeyError(f"unknown prior {name!r}; valid: {sorted(PRIORS)}")
    return dataclasses.replace(PRIORS[name], scale=scale)


def cosine_mismatch(g: Sequence[torch.Tensor], t: Sequence[torch.Tensor]) -> torch.Tensor:
    """1 − cos(g, t) over the concatenation of all parameter gradients (Inverting Gradients)."""
    dot = sum((a * b).sum() for a, b in zip(g, t, strict=True))
    g_norm = torch.sqrt(sum((a * a).sum() for a in g))
    t_norm = torch.sqrt(sum((b * b).sum() for b in t))
    return 1 - dot / (g_norm * t_norm).clamp_min(1e-30)


def l2_mismatch(g: Sequence[torch.Tensor], t: Sequence[torch.Tensor]) -> torch.Tensor:
    """Squared L2 distance between the concatenated gradients (DLG)."""
    return sum(((a - b) ** 2).sum() for a, b in zip(g, t, strict=True))


MATCHES: dict[str, Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]] = {
    "ig": cosine_mismatch,
    "dlg": l2_mismatch,
}


# --- config and result ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InversionConfig:
    """Gradient-inversion settings (defaults: an interactive IG budget for cnn_small)."""

    method: str = hp("ig", "Inverting Gradients (cosine) or DLG (L2 gradient matching)", choices=("ig", "dlg"))
    iterations: int = hp(200, "Optimisation steps (the reference uses 4,000-24,000)", 1, 100000)
    lr: float = hp(0.1, "Adam learning rate (decayed by 0.1 at 3/8, 5/8, 7/8 of the run)", 1e-5, 10.0)
    prior: str = hp("tv", "Image prior", choices=tuple(PRIORS))
    tv_weight: float = hp(1e-2, "Scale of the image prior (0 = none)", 0.0, 10.0)
    init: str = hp(
        "randn",
        "Starting image (normalised space): Gaussian noise or zeros (the mean image)",
        choices=("randn", "zeros"),
    )
    signed: bool = hp(True, "Adam on the sign of the image gradient (Geiping et al.)")
    snapshot_every: int = hp(
        25, "Keep a snapshot of the reconstructions every this many steps (0 = start and end)", 0, 100000
    )
    seed: int = hp(0, "Seed of the starting images (image i uses seed + i)", 0, 2**31 - 1)
    batched: bool = hp(True, "Reconstruct all images as one batch of independent problems (else one by one)")


@dataclass
class InversionResult:
    """Reconstructions, their history and their scores against the true images."""

    reconstructions: torch.Tensor  # (N, C, H, W) in [0, 1], CPU
    snapshots: list[tuple[int, torch.Tensor]]  # (iteration, (N, C, H, W) in [0, 1])
    psnr: torch.Tensor  # (N,) dB
    ssim: torch.Tensor  # (N,)
    losses: list[float]  # mean objective over the images, per iteration
    seconds: float
    labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))  # (N,)
    iterations: int = 0  # iterations done (fewer than planned when stopped)
    stopped: bool = False
    config: dict[str, Any] = field(default_factory=dict)


def _math_attention(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with the math attention kernel: the fused ones have no double backward (needed for ViT)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with sdpa_kernel(SDPBackend.MATH):
            return fn(*args, **kwargs)

    return wrapper


# --- the threat model: observed gradients -----------------------------------------------------------------------------
def _eval_copy(model: nn.Module) -> nn.Module:
    """A copy in eval mode with every parameter differentiable; the caller's model is never touched."""
    work = copy.deepcopy(model).eval()
    for p in work.parameters():
        p.requires_grad_(True)
    return work


@_math_attention
def observed_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """What the attacker observes: ∇_θ CE(m(x_i), y_i) of each image on its own (batch of size 1), eval mode.

    Args:
        model: the attacked model. x: normalised images (N, C, H, W) on its device. y: labels (N,).

    Returns:
        One tensor (N, *param.shape) per parameter, in ``model.parameters()`` order.
    """
    work = _eval_copy(model)
    params = list(work.parameters())
    out = [torch.empty((len(x), *p.shape), device=p.device, dtype=p.dtype) for p in params]
    for i in range(len(x)):
        loss = F.cross_entropy(work(x[i : i + 1]), y[i : i + 1])
        for o, g in zip(out, torch.autograd.grad(loss, params), strict=True):
            o[i] = g
    return out


# --- optimisation -----------------------------------------------------------------------------------------------------
GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # x (n, C, H, W) -> (dobj/dx, objective (n,))


def _batched_grad_fn(work: nn.Module, y: torch.Tensor, targets: list[torch.Tensor], cfg: InversionConfig) -> GradFn:
    """Per-problem objective gradients of a whole batch at once: vmap over grad of a functional model."""
    params = {k: v.detach() for k, v in work.named_parameters()}
    buffers = {k: v.detach() for k, v in work.named_buffers()}
    match, prior = MATCHES[cfg.method], make_prior(cfg.prior, cfg.tv_weight)

    def ce(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:  # one image (C, H, W)
        return F.cross_entropy(functional_call(work, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    def objective(xi: torch.Tensor, yi: torch.Tensor, ti: list[torch.Tensor]) -> torch.Tensor:
        g = grad(ce)(params, xi, yi)  # per-sample parameter gradient, kept differentiable in xi
        return match(list(g.values()), ti) + prior(xi)

    step = vmap(grad_and_value(objective))
    return lambda x: step(x, y, targets)


def _single_grad_fn(work: nn.Module, y: torch.Tensor, targets: list[torch.Tensor], cfg: InversionConfig) -> GradFn:
    """The same objective for one image with plain autograd (double backward); the sequential reference path."""
    params = list(work.parameters())
    match, prior = MATCHES[cfg.method], make_prior(cfg.prior, cfg.tv_weight)

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # x (1, C, H, W)
        x = x.detach().requires_grad_(True)
        g = torch.autograd.grad(F.cross_entropy(work(x), y), params, create_graph=True)
        obj = match(g, targets) + prior(x[0])
        (gx,) = torch.autograd.grad(obj, [x])
        return gx, obj.detach().reshape(1)

    return fn


def _optimise(
    x0: torch.Tensor,
    grad_fn: GradFn,
    cfg: InversionConfig,
    box: tuple[torch.Tensor, torch.Tensor],
    on_iter: Callable[[int, float], bool],
) -> tuple[torch.Tensor, list[float], list[tuple[int, torch.Tensor]]]:
    """Adam (on the signed gradient) with step decay and boxing; ``on_iter(it, loss)`` returns False to stop.

    Returns the final images, the mean objective per iteration, and snapshots (normalised space).
    """
    lo, hi = box
    x = x0.clone()
    opt = torch.optim.Adam([x], lr=cfg.lr)
    n = cfg.iterations
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[n * 3 // 8, n * 5 // 8, n * 7 // 8], gamma=0.1)
    losses: list[float] = []
    snaps = [(0, x.detach().clone())]
    for it in range(1, n + 1):
        gx, values = grad_fn(x.detach())  # (n, C, H, W), (n,)
        x.grad = gx.sign() if cfg.signed else gx
        opt.step()
        sched.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))  # box: valid pixel range
        losses.append(float(values.mean()))
        if (cfg.snapshot_every and it % cfg.snapshot_every == 0) or it == n:
            snaps.append((it, x.detach().clone()))
        if not on_iter(it, losses[-1]):
            if snaps[-1][0] != it:
                snaps.append((it, x.detach().clone()))
            break
    return x.detach(), losses, snaps


def _start(
    n: int,
    shape: tuple[int, ...],
    cfg: InversionConfig,
    box: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    offset: int = 0,
) -> torch.Tensor:
    """Starting images (n, C, H, W); image i is drawn from its own generator seeded ``seed + offset + i``."""
    if cfg.init == "zeros":
        x = torch.zeros((n, *shape))
    else:
        x = torch.stack(
            [torch.randn(shape, generator=torch.Generator().manual_seed(cfg.seed + offset + i)) for i in range(n)]
        )
    return torch.maximum(torch.minimum(x.to(device), box[1]), box[0])


# --- the attack -------------------------------------------------------------------------------------------------------
def _box(data: ImageData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel bounds (C, 1, 1) of normalised images whose pixels lie in [0, 1]."""
    mean = torch.tensor(data.mean, device=device).view(-1, 1, 1)
    std = torch.tensor(data.std, device=device).view(-1, 1, 1)
    return (0 - mean) / std, (1 - mean) / std


@_math_attention
def reconstruct(
    model: nn.Module,
    data: ImageData,
    gradients: list[torch.Tensor],
    labels: torch.Tensor,
    cfg: InversionConfig,
    *,
    stop: StopFlag | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> dict[str, Any]:
    """Invert observed per-image gradients into images (normalised space).

    Args:
        model: the attacked model (copied; run in eval mode).
        data: gives the image shape and the normalisation (for the box).
        gradients: one tensor (N, *param.shape) per parameter, as :func:`observed_gradients` returns.
        labels: the known labels (N,).
        stop: checked every iteration; a set flag ends the run early with the current images.
        on_step: receives a ``StepInfo`` after every iteration (losses: {"objective": mean over images}).

    Returns:
        ``{"images" (N, C, H, W), "snapshots" [(it, (N, C, H, W))], "losses", "iterations", "stopped"}``.
    """
    work = _eval_copy(model)
    device = model_device(work)
    box = _box(data, device)
    shape = (data.in_channels, data.image_size, data.image_size)
    y = labels.to(device).long()
    n, total = len(y), cfg.iterations if cfg.batched else cfg.iterations * len(y)
    t0, state = time.perf_counter(), {"done": 0, "stopped": False}

    def on_iter(it: int, loss: float) -> bool:
        state["done"] += 1
        if on_step is not None:
            on_step(StepInfo(state["done"], total, {"objective": loss}, time.perf_counter() - t0))
        state["stopped"] = stop is not None and stop.is_set()
        return not state["stopped"]

    if cfg.batched:
        start, fn = _start(n, shape, cfg, box, device), _batched_grad_fn(work, y, gradients, cfg)
        x, losses, snaps = _optimise(start, fn, cfg, box, on_iter)
        return {
            "images": x,
            "snapshots": snaps,
            "losses": losses,
            "iterations": len(losses),
            "stopped": state["stopped"],
        }
    out = _one_by_one(work, y, gradients, cfg, box, shape, on_iter, lambda: state["stopped"])
    return {**out, "stopped": state["stopped"]}


def _one_by_one(
    work: nn.Module,
    y: torch.Tensor,
    gradients: list[torch.Tensor],
    cfg: InversionConfig,
    box: tuple[torch.Tensor, torch.Tensor],
    shape: tuple[int, ...],
    on_iter: Callable[[int, float], bool],
    stopped: Callable[[], bool],
) -> dict[str, Any]:
    """The sequential path: each image's problem alone with plain autograd, with the seed it has in the batch."""
    finals, curves, histories = [], [], []
    for i in range(len(y)):
        x0 = _start(1, shape, cfg, box, y.device, offset=i)
        if stopped():  # not started: the starting image is all there is
            finals.append(x0), histories.append([(0, x0)])
            continue
        fn = _single_grad_fn(work, y[i : i + 1], [g[i] for g in gradients], cfg)
        x, losses, snaps = _optimise(x0, fn, cfg, box, on_iter)
        finals.append(x), curves.append(losses), histories.append(snaps)
    return {
        "images": torch.cat(finals),
        "snapshots": _merge_snapshots(histories),
        "losses": _mean_curve(curves),
        "iterations": max((len(c) for c in curves), default=0),
    }


def _mean_curve(curves: list[list[float]]) -> list[float]:
    """Mean over images of per-iteration losses (images that stopped early count until they stopped)."""
    out = []
    for it in range(max((len(c) for c in curves), default=0)):
        vals = [c[it] for c in curves if len(c) > it]
        out.append(sum(vals) / len(vals))
    return out


def _merge_snapshots(histories: list[list[tuple[int, torch.Tensor]]]) -> list[tuple[int, torch.Tensor]]:
    """Stack per-image snapshots; an image without a snapshot at some iteration contributes its latest one."""
    its = sorted({it for h in histories for it, _ in h})
    merged = []
    for it in its:
        frames = [[x for i, x in h if i <= it][-1] for h in histories]
        merged.append((it, torch.cat(frames)))
    return merged


def invert(
    model: nn.Module,
    data: ImageData,
    images_uint8: torch.Tensor,
    labels: torch.Tensor,
    cfg: InversionConfig | None = None,
    *,
    stop: StopFlag | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> InversionResult:
    """Observe each image's gradient on ``model``, reconstruct the images from them, and score the reconstructions.

    Args:
        model: the attacked model (e.g. an unlearned one); never modified.
        data: the dataset the images come from (normalisation, shape).
        images_uint8: the true images (N, C, H, W), uint8.
        labels: their labels (N,), known to the attacker.
        cfg: settings (defaults when None).
        stop: a ``threading.Event``-like flag checked every iteration.
        on_step: progress callback, one ``StepInfo`` per iteration.
    """
    from opc_core.methods.base import validate_config

    cfg = cfg or InversionConfig()
    validate_config(cfg)
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or len(images_uint8) != len(labels):
        raise ValueError("images_uint8 must be uint8 (N, C, H, W) with one label per image")
    t0 = time.perf_counter()
    device = model_device(model)
    x_true = data.normalize(images_uint8.to(device))  # (N, C, H, W)
    y = labels.to(device).long()
    grads = observed_gradients(model, x_true, y)
    out = reconstruct(model, data, grads, y, cfg, stop=stop, on_step=on_step)

    def to_pixels(x: torch.Tensor) -> torch.Tensor:
        return data.denormalize(x).clamp(0, 1).cpu()

    recon = to_pixels(out["images"])
    truth = images_uint8.float().cpu() / 255.0
    seconds = time.perf_counter() - t0
    log.info("%s inversion of %d images: %d iterations in %.1fs", cfg.method, len(y), out["iterations"], seconds)
    return InversionResult(
        recon,
        [(it, to_pixels(x)) for it, x in out["snapshots"]],
        psnr(recon, truth),
        ssim(recon, truth),
        out["losses"],
        seconds,
        labels.cpu().long(),
        out["iterations"],
        out["stopped"],
        dataclasses.asdict(cfg),
    )
