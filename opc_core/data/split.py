"""Forget/retain partitions of the training set and the test/calibration halves of the test set.

An unlearning experiment forgets either whole classes (``mode="class"``) or a random share of the training samples
(``mode="random"``). The test split is halved per class: one half measures test accuracy (TA), the other is the
attacker's calibration data, so both see every class. Labels are never altered; all indices live on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import torch

from opc_core.data.base import ImageData

log = logging.getLogger(__name__)


def _idx(values: Any) -> torch.Tensor:
    return torch.as_tensor(list(values) if not isinstance(values, torch.Tensor) else values, dtype=torch.int64).cpu()


@dataclass(frozen=True, eq=False)
class Split:
    """One forget/retain + test/calibration partition.

    Attributes:
        mode: ``"class"`` or ``"random"``.
        forget_idx: Sorted int64 indices into the training set to forget.
        retain_idx: Sorted int64 indices into the training set to keep (the complement of ``forget_idx``).
        test_idx: Sorted int64 indices into the test set used for test accuracy.
        cal_idx: Sorted int64 indices into the test set held out for attack calibration.
        forget_classes: The forgotten classes (``()`` in random mode).
        forget_ratio: The forgotten share (``None`` in class mode).
        seed: Seed of the random draws.
    """

    mode: str
    forget_idx: torch.Tensor
    retain_idx: torch.Tensor
    test_idx: torch.Tensor
    cal_idx: torch.Tensor
    forget_classes: tuple[int, ...]
    forget_ratio: float | None
    seed: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (self.mode, self.forget_classes, self.forget_ratio, self.seed) == (
            other.mode,
            other.forget_classes,
            other.forget_ratio,
            other.seed,
        ) and all(
            torch.equal(getattr(self, k), getattr(other, k))
            for k in ("forget_idx", "retain_idx", "test_idx", "cal_idx")
        )

    def __hash__(self) -> int:
        sizes = tuple(len(getattr(self, k)) for k in ("forget_idx", "retain_idx", "test_idx", "cal_idx"))
        return hash((self.mode, self.forget_classes, self.forget_ratio, self.seed, sizes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (index tensors as lists of ints)."""
        return {
            "mode": self.mode,
            "forget_idx": self.forget_idx.tolist(),
            "retain_idx": self.retain_idx.tolist(),
            "test_idx": self.test_idx.tolist(),
            "cal_idx": self.cal_idx.tolist(),
            "forget_classes": list(self.forget_classes),
            "forget_ratio": self.forget_ratio,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        """Inverse of :meth:`to_dict`."""
        ratio = d.get("forget_ratio")
        return cls(
            mode=str(d["mode"]),
            forget_idx=_idx(d["forget_idx"]),
            retain_idx=_idx(d["retain_idx"]),
            test_idx=_idx(d["test_idx"]),
            cal_idx=_idx(d["cal_idx"]),
            forget_classes=tuple(int(c) for c in d.get("forget_classes") or ()),
            forget_ratio=None if ratio is None else float(ratio),
            seed=int(d.get("seed", 0)),
        )

    def summary(self) -> dict[str, Any]:
        """Sizes and parameters, without the index lists."""
        return {
            "mode": self.mode,
            "forget_classes": list(self.forget_classes),
            "forget_ratio": self.forget_ratio,
            "seed": self.seed,
            "n_forget": len(self.forget_idx),
            "n_retain": len(self.retain_idx),
            "n_test": len(self.test_idx),
            "n_cal": len(self.cal_idx),
        }


def _check_classes(forget_classes: Sequence[int], k: int) -> tuple[int, ...]:
    try:
        values = list(forget_classes)
    except TypeError:
        raise ValueError(f"forget_classes must be a sequence of class indices in 0..{k - 1}") from None
    if not all(isinstance(c, Integral) and not isinstance(c, bool) for c in values):
        raise ValueError(f"forget_classes must be integers in 0..{k - 1}, got {values!r}")
    classes = [int(c) for c in values]
    if not 1 <= len(classes) <= k - 1:
        raise ValueError(f"forget 1 to {k - 1} classes (valid classes 0..{k - 1}), got {len(classes)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"forget_classes must be distinct, got {classes}")
    bad = [c for c in classes if not 0 <= c < k]
    if bad:
        raise ValueError(f"forget_classes {bad} out of range; valid classes are 0..{k - 1}")
    return tuple(sorted(classes))


def seeded_subset(idx: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``min(n, len(idx))`` entries of ``idx`` drawn without replacement by a generator seeded with ``seed``, sorted.

    The same (idx, n, seed) always gives the same subset, on any device; the result is on ``idx``'s device.
    """
    return draw_subset(idx, n, torch.Generator().manual_seed(seed))


def draw_subset(idx: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Like :func:`seeded_subset` with a caller's CPU generator, for several draws that follow each other."""
    if n < 0:
        raise ValueError(f"cannot draw a subset of negative size {n}")
    pick = torch.randperm(len(idx), generator=generator)[: min(n, len(idx))]  # (n,) on the CPU
    return idx[pick.to(idx.device)].sort().values


def calibration_split(test_y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Halve the test set per class: ``(test_idx, cal_idx)``, both sorted int64 on the CPU.

    Each class's test indices are permuted with one ``torch.Generator`` seeded by ``seed`` (classes in increasing
    order); the first ``n // 2`` go to calibration, the rest to ``test_idx``.
    """
    y = test_y.detach().cpu().long()  # (M,)
    g = torch.Generator().manual_seed(seed)
    cal_parts, test_parts = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()  # (M_c,)
        idx = idx[torch.randperm(len(idx), generator=g)]
        half = len(idx) // 2
        cal_parts.append(idx[:half])
        test_parts.append(idx[half:])
    empty = torch.zeros(0, dtype=torch.int64)
    cal = torch.cat(cal_parts).sort().values if cal_parts else empty
    test = torch.cat(test_parts).sort().values if test_parts else empty
    return test, cal


def make_split(
    data: ImageData,
    *,
    forget_classes: Sequence[int] | None = None,
    forget_ratio: float | None = None,
    seed: int = 0,
) -> Split:
    """Partition ``data`` for one unlearning experiment.

    Args:
        data: The dataset.
        forget_classes: Class mode: forget every training sample of these classes (1 to K-1 distinct classes).
        forget_ratio: Random mode: forget ``round(forget_ratio * N)`` training samples, ``0 < forget_ratio < 1``.
        seed: Seeds the random forget draw and the per-class test/calibration halving.

    Returns:
        The split (indices on the CPU).

    Raises:
        ValueError: Not exactly one of ``forget_classes``/``forget_ratio``, or an invalid value.
    """
    if (forget_classes is None) == (forget_ratio is None):
        raise ValueError("give exactly one of forget_classes (class mode) or forget_ratio (random mode)")
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    train_y = data.train_y.detach().cpu().long()  # (N,)
    n = len(train_y)
    if forget_classes is not None:
        classes = _check_classes(forget_classes, data.num_classes)
        mask = torch.isin(train_y, torch.tensor(classes, dtype=torch.int64))  # (N,)
        mode, ratio = "class", None
    else:
        if isinstance(forget_ratio, bool) or not isinstance(forget_ratio, Real) or not 0.0 < forget_ratio < 1.0:
            raise ValueError(f"forget_ratio must be a number with 0 < forget_ratio < 1, got {forget_ratio!r}")
        ratio = float(forget_ratio)
        n_forget = round(ratio * n)
        if not 1 <= n_forget <= n - 1:
            raise ValueError(f"forget_ratio {ratio} forgets {n_forget} of {n} training samples; need 1..{n - 1}")
        mask = torch.zeros(n, dtype=torch.bool)
        mask[seeded_subset(torch.arange(n), n_forget, seed)] = True
        mode, classes = "random", ()
    if not mask.any() or mask.all():
        raise ValueError(f"forget_classes {list(classes)} leave an empty forget or retain set")
    forget_idx = torch.nonzero(mask).flatten()  # (N_f,) sorted
    retain_idx = torch.nonzero(~mask).flatten()  # (N - N_f,) sorted
    test_idx, cal_idx = calibration_split(data.test_y, seed)
    split = Split(mode, forget_idx, retain_idx, test_idx, cal_idx, classes, ratio, seed)
    log.debug("split %s", split.summary())
    return split
