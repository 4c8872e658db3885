"""Batched inference under ``torch.inference_mode``: features and logits of index sets of a dataset.

Within a :class:`ForwardMemo` scope, the features and logits of the models it tracks are computed once per image and
read back for every later request (the evaluation asks for overlapping index sets: UA/RA/TA, the MIA's shadow sets,
the representation metrics' subsamples). Only tracked models are memoised, never a model being trained.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from opc_core.data import ImageData
from opc_core.env.device import model_device


def _images(data: ImageData, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "train":
        return data.train_x, data.train_y
    if split == "test":
        return data.test_x, data.test_y
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def fingerprint(model: nn.Module) -> str:
    """A digest of every tensor of ``model``'s state (weights and buffers): equal digests, equal outputs."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _Table:
    """The rows computed so far of one model on one image set: features (N, D), logits (N, K), a filled mask (N,)."""

    def __init__(self) -> None:
        self.feats: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.have: torch.Tensor | None = None

    def rows(self, compute, idx: torch.Tensor, n_all: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.have is None:
            self.have = torch.zeros(n_all, dtype=torch.bool)
        missing = torch.unique(idx[~self.have[idx]])
        if len(missing):
            f, z = compute(missing)
            if self.feats is None:
                self.feats, self.logits = f.new_zeros(n_all, f.shape[1]), z.new_zeros(n_all, z.shape[1])
            self.feats[missing], self.logits[missing] = f, z
            self.have[missing] = True
        if self.feats is None:  # nothing requested yet and nothing to compute: an empty request
            return compute(idx)
        return self.feats[idx], self.logits[idx]


_SHARED: OrderedDict[Hashable, dict[str, _Table]] = OrderedDict()  # tables kept across scopes, by key (LRU)
_SHARED_MAX = 2
_ACTIVE: ContextVar[ForwardMemo | None] = ContextVar("forward_memo", default=None)  # per thread, not process-wide


class ForwardMemo:
    """A scope in which the tracked models' features and logits are computed at most once per image.

    ``track(model)`` memoises for this scope only; ``track(model, share=key)`` keeps the rows across scopes under
    ``key`` (the evaluation shares the original model's, keyed by its :func:`fingerprint`, so a comparison of several
    methods runs the original's forward passes once). The tracked models must not change inside the scope.
    """

    def __init__(self) -> None:
        self._tables: dict[int, dict[str, _Table]] = {}

    def track(self, model: nn.Module, share: Hashable | None = None) -> None:
        if share is None:
            self._tables.setdefault(id(model), {})
            return
        tables = _SHARED.pop(share, None) or {}
        _SHARED[share] = tables
        while len(_SHARED) > _SHARED_MAX:
            _SHARED.popitem(last=False)
        self._tables[id(model)] = tables

    def table(self, model: nn.Module, split: str) -> _Table | None:
        tables = self._tables.get(id(model))
        return None if tables is None else tables.setdefault(split, _Table())

    @contextmanager
    def active(self) -> Iterator[ForwardMemo]:
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


def features_and_logits(
    model: nn.Module, data: ImageData, idx: torch.Tensor | None = None, split: str = "train", batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features (N, D) and logits (N, K) of ``data``'s images ``idx`` (all when None), float32 on CPU."""
    n_all = len(_images(data, split)[0])
    idx = torch.arange(n_all) if idx is None else idx.cpu()
    memo = _ACTIVE.get()
    table = memo.table(model, split) if memo is not None else None
    if table is None:
        return _forward(model, data, idx, split, batch_size)
    return table.rows(lambda sel: _forward(model, data, sel, split, batch_size), idx, n_all)


@torch.inference_mode()
def _forward(
    model: nn.Module, data: ImageData, idx: torch.Tensor, split: str, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    x_all, _ = _images(data, split)
    device = model_device(model)
    was_training = model.training
    model.eval()
    feats, logits = [], []
    for start in range(0, len(idx), batch_size):
        sel = idx[start : start + batch_size].to(x_all.device)
        x = data.normalize(x_all[sel]).to(device)
        f = model.features(x)
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    model.train(was_training)
    if not feats:
        k = getattr(model, "num_classes", 0)
        return torch.zeros(0, getattr(model, "feature_dim", 0)), torch.zeros(0, k)
    return torch.cat(feats), torch.cat(logits)


def logits_of(
    model: nn.Module, data: ImageData, idx: torch.Tensor | None = None, split: str = "train", batch_size: int = 1024
) -> torch.Tensor:
    """Logits (N, K) of ``data``'s images ``idx``."""
    return features_and_logits(model, data, idx, split, batch_size)[1]


def labels_of(data: ImageData, idx: torch.Tensor | None = None, split: str = "train") -> torch.Tensor:
    """Labels (N,) on CPU."""
    y = _images(data, split)[1].cpu()
    return y if idx is None else y[idx.cpu()]


def accuracy(model: nn.Module, data: ImageData, idx: torch.Tensor | None = None, split: str = "train") -> float:
    """Top-1 accuracy in percent (0-100) on ``data``'s images ``idx``; NaN for an empty set."""
    logits = logits_of(model, data, idx, split)
    if len(logits) == 0:
        return float("nan")
    return 100.0 * (logits.argmax(1) == labels_of(data, idx, split)).float().mean().item()
