"""Where does the forgotten information live? A per-run diagnostic beside the recovery attacks (docs/science.md §9).

The logits of a model with a linear head ``g(f) = W f + b`` depend on the penultimate features ``f`` (D dimensions)
only through W's row space (rank ≤ K). A method that shrinks the logits (OPC on the logits, the paper's loss) gets a
gradient inside that row space only, so the forget classes can survive in the other D − K dimensions, the head's null
space, where the unlearned head cannot see them but a linear read-out can. The diagnostic measures this directly:

- **FM restricted to the row space / the null space**: FM (the paper's attack, :mod:`.fm`) fed only the part of the
  unlearned features in the unlearned head's row space, or only the part in its null space. If the null-space part
  alone recovers as much as full FM, the forgotten classes live where the head does not look.
- **probe inside D_f** and the **Fisher ratio** among the forget set's classes, for the unlearned and the original
  model (scale-free, :mod:`opc_core.metrics.separation`): can the forget classes still be told apart from each other?
- the share of D_f's (centred) feature variance in the null space, and the share of D_f with all-zero features.

The head's affine map is read off the model by evaluating ``head`` on the unit vectors (exact for a linear head; for
any other head it is the map's linearisation through the origin, flagged as ``head_affine`` False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from opc_core.attacks.recovery.base import RidgeConfig
from opc_core.attacks.recovery.fm import fm_logits
from opc_core.attacks.recovery.threat import FeatureBank
from opc_core.config import hp, validate_config
from opc_core.data import ImageData, Split, seeded_subset
from opc_core.env.device import model_device
from opc_core.metrics.separation import fisher_ratio, probe_inside
from opc_core.train.inference import labels_of

KEYS = (
    "fm_full_ua",
    "fm_row_ua",
    "fm_null_ua",
    "null_share_forget",
    "probe_inside",
    "probe_inside_original",
    "probe_inside_chance",
    "fisher_forget",
    "fisher_forget_original",
    "separation_kept",
    "zero_feature_share",
    "head_rank",
    "feature_dim",
)
"""The keys of :func:`where_forgotten`'s result that the report and the pages show."""


@dataclass(frozen=True)
class DiagnosticConfig(RidgeConfig):
    """Settings of the diagnostic: FM's calibration and ridge settings, and the probe's sample (seed 0, fixed)."""

    max_probe: int = hp(2000, "D_f images (seeded sample) the probe inside D_f and the Fisher ratio use", 20, 100000)


def head_affine(model: nn.Module, dim: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(W (K, D), b (K,), exact)`` of ``model.head`` read off its outputs on 0 and the unit vectors (float64, CPU);
    ``exact`` says whether the head is affine (checked on random inputs)."""
    dev = model_device(model)
    with torch.inference_mode():
        basis = torch.cat([torch.zeros(1, dim), torch.eye(dim)]).to(dev)
        out = model.head(basis).double().cpu()  # (D+1, K)
        b, w = out[0], (out[1:] - out[0]).T  # (K,), (K, D)
        probe = torch.randn(8, dim, generator=torch.Generator().manual_seed(0))
        exact = torch.allclose(model.head(probe.to(dev)).double().cpu(), probe.double() @ w.T + b, atol=1e-3, rtol=1e-3)
    return w, b, bool(exact)


def row_space(w: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """An orthonormal basis (D, r) of the row space of ``w`` (K, D)."""
    _, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    rank = int((s > rtol * s.max().clamp_min(1e-300)).sum())
    return vh[:rank].T


def where_forgotten(
    unlearned: nn.Module,
    original: nn.Module,
    data: ImageData,
    split: Split,
    cfg: DiagnosticConfig | None = None,
    *,
    bank: FeatureBank | None = None,
) -> dict[str, Any]:
    """The diagnostic of one run: FM on the row-space and null-space parts of the unlearned features, the probe inside
    D_f and the Fisher ratio (unlearned and original), the null-space share of D_f's variance; see the module doc.

    Returns:
        the :data:`KEYS` (accuracies and UAs in %, shares in %), plus ``head_affine``, ``n_probe``,
        ``cal_exclude_forget`` and ``eps``.
    """
    cfg = cfg or DiagnosticConfig()
    validate_config(cfg)
    bank = bank or FeatureBank(unlearned, original, data, split)
    f_u, _, _ = bank.get("unlearned", "cal", cfg.cal_exclude_forget)  # (M, D)
    f_o, _, _ = bank.get("original", "cal", cfg.cal_exclude_forget)  # (M, D_o)
    f_forget, _, forget = bank.get("unlearned", "forget")  # (N_f, D)
    y = labels_of(data, forget, "train")
    w, _, exact = head_affine(unlearned, f_u.shape[1])
    basis = row_space(w)  # (D, r)

    def row(f: torch.Tensor) -> torch.Tensor:
        return (f.double() @ basis @ basis.T).float()

    def fm_ua(fc: torch.Tensor, ff: torch.Tensor) -> float:
        logits, _ = fm_logits(original, fc, f_o, ff, cfg.eps)
        return 100.0 - 100.0 * float((logits.argmax(1) == y).float().mean())

    centred = f_forget.double() - f_forget.double().mean(0)
    total = float((centred**2).sum())
    in_row = float(((centred @ basis) ** 2).sum())
    pick = seeded_subset(torch.arange(len(forget)), cfg.max_probe, 0)  # sorted positions
    f_orig_forget = bank.get("original", "forget")[0]
    probe_u = probe_inside(f_forget[pick], y[pick], seed=0)
    probe_o = probe_inside(f_orig_forget[pick], y[pick], seed=0)
    fisher_u, fisher_o = fisher_ratio(f_forget[pick], y[pick]), fisher_ratio(f_orig_forget[pick], y[pick])
    norms, ref = f_forget.double().norm(dim=1), float(f_u.double().norm(dim=1).median())
    return {
        "fm_full_ua": fm_ua(f_u, f_forget),
        "fm_row_ua": fm_ua(row(f_u), row(f_forget)),
        "fm_null_ua": fm_ua(f_u - row(f_u), f_forget - row(f_forget)),
        "null_share_forget": 100.0 * (1.0 - in_row / total) if total > 0 else float("nan"),
        "probe_inside": probe_u["acc"],
        "probe_inside_original": probe_o["acc"],
        "probe_inside_chance": probe_u["chance"],
        "fisher_forget": fisher_u,
        "fisher_forget_original": fisher_o,
        "separation_kept": fisher_u / fisher_o if fisher_o and fisher_o == fisher_o else float("nan"),
        "zero_feature_share": 100.0 * float((norms <= 1e-6 * max(ref, 1e-30)).double().mean()),
        "head_rank": int(basis.shape[1]),
        "feature_dim": int(f_u.shape[1]),
        "head_affine": exact,
        "n_probe": len(pick),
        "cal_exclude_forget": cfg.cal_exclude_forget,
        "eps": cfg.eps,
    }
