"""What a recovery attacker holds (docs/science.md §6): calibration images, leaked forget samples, and their features.

The attacker holds the unlearned model, the original model, and the calibration set D_cal (the test images
``split.cal_idx``, never D_f); the leak-based attacks additionally receive k forget samples with their labels.
Features are computed through one :class:`FeatureBank` per (unlearned, original, data, split): it extracts each set
lazily, once, so several attacks (or a benchmark) share one extraction. Nothing is cached globally.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from opc_core.data import ImageData, Split
from opc_core.train.inference import features_and_logits, labels_of


def calibration_idx(data: ImageData, split: Split, exclude_forget: bool = False) -> torch.Tensor:
    """The attacker's calibration images (indices into the test set), optionally without the forget classes.

    In random-sample splits every class is retained, so ``exclude_forget`` has nothing to drop there.
    """
    cal = split.cal_idx.cpu()
    if exclude_forget and split.forget_classes:
        y = labels_of(data, cal, "test")
        cal = cal[~torch.isin(y, torch.tensor(split.forget_classes, dtype=torch.int64))]
    if len(cal) == 0:
        raise ValueError("the calibration set is empty")
    return cal


def leak_forget(data: ImageData, split: Split, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the leaked forget samples: ``(leaked_idx, rest_idx)``, both sorted training indices.

    Class-wise splits leak ``k`` samples of each forget class (so every forgotten class is represented); random-sample
    splits leak ``k`` samples of D_f in total. The draw uses one ``torch.Generator`` seeded with ``seed``.
    """
    forget = split.forget_idx.cpu()
    g = torch.Generator().manual_seed(seed)
    if split.forget_classes:
        y = labels_of(data, forget, "train")
        parts = []
        for c in split.forget_classes:
            members = forget[y == c]
            parts.append(members[torch.randperm(len(members), generator=g)[:k]])
        leaked = torch.cat(parts)
    else:
        leaked = forget[torch.randperm(len(forget), generator=g)[:k]]
    if len(leaked) >= len(forget):
        raise ValueError(f"k={k} leaks the whole forget set ({len(forget)} samples); nothing is left to score")
    leaked = leaked.sort().values
    rest = forget[~torch.isin(forget, leaked)]
    return leaked, rest


class FeatureBank:
    """Lazily extracted, per-call cached features and logits of the sets the attacks read.

    Keys are ``(model_role, part, exclude_forget)`` with role "unlearned" | "original" and part "cal" | "forget";
    the values are ``(F (N, D), Z (N, K), idx)`` on the CPU. One bank serves every attack on the same models and split.
    Extraction runs in batches of 128 on the models as they are: ``create_model`` already builds them channels-last,
    the layout mkldnn's CPU convolutions are fastest in.
    """

    def __init__(
        self, unlearned: nn.Module, original: nn.Module | None, data: ImageData, split: Split, batch_size: int = 128
    ) -> None:
        self.models = {"unlearned": unlearned, "original": original}
        self.data, self.split, self.batch_size = data, split, batch_size
        self._store: dict[tuple[str, str, bool], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.seconds = 0.0  # total extraction time so far

    def _model(self, role: str) -> nn.Module:
        model = self.models[role]
        if model is None:
            raise ValueError(f"this attack needs the {role} model")
        return model

    def _indices(self, part: str, exclude_forget: bool) -> tuple[torch.Tensor, str, bool]:
        """The indices of ``part``, the image set they index, and the normalised ``exclude_forget`` of the key."""
        if part == "cal":
            return calibration_idx(self.data, self.split, exclude_forget), "test", bool(exclude_forget)
        if part == "forget":
            return self.split.forget_idx.cpu(), "train", False
        raise ValueError(f"part must be 'cal' or 'forget', got {part!r}")

    def put(
        self, role: str, part: str, features: torch.Tensor, logits: torch.Tensor, exclude_forget: bool = False
    ) -> None:
        """Hand the bank features a caller already has (rows in the order of the split's indices for ``part``)."""
        idx, _, exclude = self._indices(part, exclude_forget)
        if len(features) != len(idx) or len(logits) != len(idx):
            raise ValueError(f"expected {len(idx)} rows for {role}/{part}, got {len(features)} and {len(logits)}")
        self._store[(role, part, exclude)] = (features.float().cpu(), logits.float().cpu(), idx)

    def get(
        self, role: str, part: str, exclude_forget: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features, logits, idx)`` of ``role``'s model on ``part`` ("cal" test images or "forget" train images)."""
        idx, which, exclude = self._indices(part, exclude_forget)
        key = (role, part, exclude)
        if key not in self._store:
            t0 = time.perf_counter()
            f, z = features_and_logits(self._model(role), self.data, idx, which, batch_size=self.batch_size)
            self.seconds += time.perf_counter() - t0
            self._store[key] = (f, z, idx)
        return self._store[key]
