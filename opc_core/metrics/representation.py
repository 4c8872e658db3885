"""Representation metrics: does the forget set still have structure inside the model? (docs/science.md §5)

OPC (arXiv 2507.07754, Eq. "one-point contraction") claims deep forgetting means the model maps every forget sample to
one point. These metrics make that visible on the penultimate features f(x) (N, D) and the logits m(x) (N, K):

- **norms**: mean ``||f(x)||_2`` and ``||m(x)||_2`` on D_f vs D_r (OPC drives the forget norm towards 0).
- **contraction radius**: ``r(D_f) / r(D_r)`` where ``r(S) = mean_{x in S} ||f(x) - c_S||_2`` and ``c_S`` is the
  overall (not per-class) centroid of the set S's features. 1 means D_f is as spread out as D_r; 0 means one point.
  With one overall centroid per set, D_r's radius includes its between-class spread, and so does D_f's in random
  mode; compare it with the same ratio of the original model (``contraction_radius_original``).
- **linear CKA** (Kornblith et al. 2019, "Similarity of neural network representations revisited", Eq. 5) between
  the original and the unlearned features on D_f: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on column-centred X, Y.
- **prediction entropy** on D_f in nats (``log K`` is the uniform prediction a retrained model tends to give).

CKA degenerate-case convention (a fully collapsed set has zero variance, where CKA is 0/0): a side is *constant*
when its centred Frobenius norm is at most ``rtol * ||X||_F + atol * sqrt(N)``. If both sides are constant CKA is
**1.0** (two identical, information-free geometries); if exactly one side is constant CKA is **0.0** (no shared
structure: the collapsed side keeps none of the other's). Both cases set the ``degenerate`` flag, and CKA is never NaN.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

from opc_core.data import ImageData, draw_subset
from opc_core.data.split import Split
from opc_core.train.inference import features_and_logits

log = logging.getLogger(__name__)


def _is_constant(x: torch.Tensor, xc: torch.Tensor, rtol: float, atol: float) -> bool:
    return float(xc.norm()) <= rtol * float(x.norm()) + atol * math.sqrt(len(x))


def linear_cka_detail(
    a: torch.Tensor, b: torch.Tensor, *, rtol: float = 1e-6, atol: float = 1e-12
) -> tuple[float, bool]:
    """Linear CKA of features a (N, D1) and b (N, D2), and whether the degenerate convention was applied.

    Args:
        a: First representation of N samples.
        b: Second representation of the same N samples.
        rtol: Relative tolerance of the "constant" test (centred norm vs raw norm).
        atol: Absolute tolerance of the "constant" test, per sample (RMS).

    Returns:
        ``(cka, degenerate)``: cka in [0, 1]; see the module docstring for the degenerate convention.

    Raises:
        ValueError: Different numbers of rows, or no rows.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"CKA needs the same, non-zero number of samples, got {len(a)} and {len(b)}")
    x = a.detach().cpu().double().reshape(len(a), -1)  # (N, D1)
    y = b.detach().cpu().double().reshape(len(b), -1)  # (N, D2)
    xc, yc = x - x.mean(0), y - y.mean(0)
    const_x, const_y = _is_constant(x, xc, rtol, atol), _is_constant(y, yc, rtol, atol)
    if const_x or const_y:
        return (1.0 if const_x and const_y else 0.0), True
    xc, yc = xc / xc.norm(), yc / yc.norm()  # CKA is scale-invariant; unit norms keep the products well-conditioned
    if max(x.shape[1], y.shape[1]) > len(x):  # Gram form is cheaper when D > N
        kx, ky = xc @ xc.T, yc @ yc.T  # (N, N)
        cka = (kx * ky).sum() / (kx.norm() * ky.norm())
    else:
        cka = (yc.T @ xc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    return float(cka.clamp(0.0, 1.0)), False


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA (Kornblith et al. 2019) of a (N, D1) and b (N, D2); degenerate inputs follow the module convention."""
    return linear_cka_detail(a, b)[0]


def _radius(f: torch.Tensor) -> float:
    f = f.detach().cpu().double().reshape(len(f), -1)  # (N, D)
    return float((f - f.mean(0)).norm(dim=1).mean())


def contraction_radius(f_forget: torch.Tensor, f_retain: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean distance of D_f features to their centroid over the same for D_r (each set's overall centroid).

    Args:
        f_forget: Forget-set features (N_f, D).
        f_retain: Retain-set features (N_r, D).
        eps: Radii at most ``eps`` count as zero.

    Returns:
        The ratio; 1.0 when both radii are zero, ``inf`` when only the retain radius is zero.

    Raises:
        ValueError: An empty set.
    """
    if len(f_forget) == 0 or len(f_retain) == 0:
        raise ValueError(f"contraction radius needs non-empty sets, got {len(f_forget)} and {len(f_retain)}")
    r_f, r_r = _radius(f_forget), _radius(f_retain)
    if r_r <= eps:
        return 1.0 if r_f <= eps else math.inf
    return r_f / r_r


def prediction_entropy(logits: torch.Tensor) -> float:
    """Mean entropy of softmax(logits) (N, K) in nats; NaN for N == 0."""
    if len(logits) == 0:
        return float("nan")
    logp = logits.detach().cpu().double().log_softmax(1)  # (N, K)
    return float(-(logp.exp() * logp).sum(1).mean())


def _mean_norm(x: torch.Tensor) -> float:
    return float(x.double().norm(dim=1).mean()) if len(x) else float("nan")


def representation_stats(
    original: nn.Module,
    unlearned: nn.Module,
    data: ImageData,
    split: Split,
    *,
    max_samples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Norms, contraction radius, CKA and entropy of the original and unlearned models on D_f (and D_r).

    Args:
        original: The model before unlearning.
        unlearned: The model after unlearning.
        data: The dataset the split indexes.
        split: The forget/retain partition (training indices).
        max_samples: D_f and D_r are each subsampled to at most this many samples (seeded, the same for both models).
        seed: Seeds the subsample.

    Returns:
        ``feat_norm_{forget,retain}``, ``logit_norm_{forget,retain}`` (unlearned model; ``*_original`` for the
        original), ``contraction_radius`` and ``contraction_radius_original``, ``cka_forget`` and ``cka_degenerate``
        (original vs unlearned features on D_f), ``cka_retain`` (the same on D_r, a control), ``entropy_forget``,
        ``entropy_forget_original``, ``entropy_retain``, ``max_entropy`` (log K), ``n_forget``, ``n_retain``.
    """
    g = torch.Generator().manual_seed(seed)
    fi, ri = draw_subset(split.forget_idx, max_samples, g), draw_subset(split.retain_idx, max_samples, g)
    fo_f, zo_f = features_and_logits(original, data, fi)  # (N_f, D), (N_f, K)
    fo_r, zo_r = features_and_logits(original, data, ri)  # (N_r, D), (N_r, K)
    fu_f, zu_f = features_and_logits(unlearned, data, fi)
    fu_r, zu_r = features_and_logits(unlearned, data, ri)
    cka_forget, degenerate = linear_cka_detail(fo_f, fu_f)
    return {
        "feat_norm_forget": _mean_norm(fu_f),
        "feat_norm_retain": _mean_norm(fu_r),
        "logit_norm_forget": _mean_norm(zu_f),
        "logit_norm_retain": _mean_norm(zu_r),
        "feat_norm_forget_original": _mean_norm(fo_f),
        "feat_norm_retain_original": _mean_norm(fo_r),
        "logit_norm_forget_original": _mean_norm(zo_f),
        "logit_norm_retain_original": _mean_norm(zo_r),
        "contraction_radius": contraction_radius(fu_f, fu_r),
        "contraction_radius_original": contraction_radius(fo_f, fo_r),
        "cka_forget": cka_forget,
        "cka_degenerate": degenerate,
        "cka_retain": linear_cka(fo_r, fu_r),
        "entropy_forget": prediction_entropy(zu_f),
        "entropy_forget_original": prediction_entropy(zo_f),
        "entropy_retain": prediction_entropy(zu_r),
        "max_entropy": math.log(zu_f.shape[1]),
        "n_forget": len(fi),
        "n_retain": len(ri),
    }
