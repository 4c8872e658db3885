"""Closed-form ridge regression shared by the FM and HR attacks (docs/science.md §6)."""

from __future__ import annotations

import torch


def ridge_fit(x: torch.Tensor, y: torch.Tensor, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Closed-form ridge regression with an unregularised bias: ``W = argmin ||[x, 1] W - y||² + λ||W_x||²``.

    λ is relative: ``eps`` times the mean per-dimension sum of squares of the *centred* inputs, so the fit does not
    change when the unlearned features are rescaled (a collapsed model's tiny features get a tiny λ; a linear map
    could undo any rescaling anyway). The bias row is not regularised, which makes the fit equal to ridge on centred
    inputs. A floor of 1e-12 per sample keeps the normal equations solvable when the inputs are exactly constant.
    The (D+1)x(D+1) normal equations are solved in float64.

    Args:
        x: inputs (N, D). y: targets (N, T). eps: relative ridge strength.

    Returns:
        ``W`` (D+1, T) in float64 (last row = bias) and diagnostics (``lambda``, relative ``residual``).
    """
    xd, yd = x.double(), y.double()
    n, d = xd.shape
    a = torch.cat([xd, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # (N, D+1)
    centred = xd - xd.mean(0, keepdim=True)
    lam = eps * max(float((centred * centred).sum()) / max(d, 1), 1e-12 * n)
    reg = torch.full((d + 1,), lam, dtype=torch.float64)
    reg[-1] = 0.0  # the bias is not regularised
    w = torch.linalg.solve(a.T @ a + torch.diag(reg), a.T @ yd)  # (D+1, T)
    fit = a @ w  # (N, T)
    total = float(((yd - yd.mean(0)) ** 2).sum())
    resid = float(((fit - yd) ** 2).sum()) / max(total, 1e-30)  # share of the targets' variance left unexplained
    return w, {"lambda": lam, "residual": resid}


def apply_affine(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``[f, 1] @ W`` in float64, returned as float32: (N, D) x (D+1, T) -> (N, T)."""
    return (f.double() @ w[:-1] + w[-1]).float()
