"""MIA-efficacy: how much of the forget set a membership-inference attack calls "non-member" (docs/science.md §5).

The protocol of Jia et al. 2023, "Model sparsity can simplify machine unlearning" (NeurIPS 2023), as implemented in
the public SalUn code (OPTML-Group/Unlearn-Saliency, ``evaluation/SVC_MIA.py``) and reused by the OPC paper
(arXiv 2507.07754):

1. Per-sample features of the model's prediction: by default the **confidence**, i.e. the softmax probability of the
   true label ``p_y`` (SalUn's ``"confidence"`` entry, the one its MIA-efficacy reports).
2. A shadow training set: the retain set D_r as members (label 1) and test images as non-members (label 0). In
   class-wise mode the non-members are the retained classes' images of ``split.test_idx`` (so that "non-member" is
   not confounded with "unseen class"); in random mode all of ``split.test_idx``. Both sets are subsampled to the same
   size (at most ``max_per_set`` each, seeded) so the attack is class-balanced.
3. An RBF SVC with ``C=3, gamma="auto"`` (SalUn's ``SVC_fit_predict``) is fitted on the shadow set, unscaled, and
   applied to D_f. **MIA-efficacy** = percentage of D_f predicted non-member (higher = more forgotten).

Other feature choices of that code are options (``MIA_FEATURES``): ``"entropy"`` (Shannon entropy of the softmax),
``"m_entropy"`` (the modified entropy of Song & Mittal 2021, written here from its definition; SalUn's version indexes
the label column incorrectly) and ``"prob"`` (the whole softmax vector).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from opc_core.data import ImageData, draw_subset
from opc_core.data.split import Split
from opc_core.metrics.accuracy import retained_test_idx
from opc_core.train.inference import labels_of, logits_of

log = logging.getLogger(__name__)

_EPS = 1e-30


def _confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    p = logits.float().softmax(1)  # (N, K)
    return p.gather(1, labels.long()[:, None])  # (N, 1)


def _entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logp = logits.float().log_softmax(1)  # (N, K)
    return -(logp.exp() * logp).sum(1, keepdim=True)  # (N, 1)


def _m_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Song & Mittal 2021: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)."""
    p = logits.float().softmax(1)  # (N, K)
    onehot = torch.nn.functional.one_hot(labels.long(), p.shape[1]).bool()  # (N, K)
    own = (1 - p) * torch.log(p.clamp_min(_EPS))  # (N, K) term used at the true label
    other = p * torch.log((1 - p).clamp_min(_EPS))  # (N, K) term used elsewhere
    return -torch.where(onehot, own, other).sum(1, keepdim=True)  # (N, 1)


def _prob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(1)  # (N, K)


# Feature name -> fn(logits (N, K), labels (N,)) -> (N, F).
MIA_FEATURES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "confidence": _confidence,
    "entropy": _entropy,
    "m_entropy": _m_entropy,
    "prob": _prob,
}


def mia_features(logits: torch.Tensor, labels: torch.Tensor, feature: str = "confidence") -> torch.Tensor:
    """Per-sample attack features (N, F) of logits (N, K) and true labels (N,); see ``MIA_FEATURES``."""
    if feature not in MIA_FEATURES:
        raise KeyError(f"unknown MIA feature {feature!r}; valid: {sorted(MIA_FEATURES)}")
    return MIA_FEATURES[feature](logits.cpu(), labels.cpu())


def _as_2d(x: torch.Tensor | np.ndarray | list) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = arr.astype(np.float64)
    return arr[:, None] if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)  # (N, F)


def mia_from_confidences(
    member_conf: torch.Tensor | np.ndarray,
    nonmember_conf: torch.Tensor | np.ndarray,
    target_conf: torch.Tensor | np.ndarray,
    seed: int = 0,
    *,
    max_per_set: int | None = None,
) -> float:
    """Fit the SVC on members (1) vs non-members (0) and return the % of targets predicted non-member.

    Args:
        member_conf: Member features, shape (N_m,) or (N_m, F).
        nonmember_conf: Non-member features, (N_n,) or (N_n, F).
        target_conf: Features of the samples to classify (D_f), (N_t,) or (N_t, F).
        seed: Seeds the class-balancing subsample.
        max_per_set: Cap on the size of each shadow set (None: the smaller set's size).

    Returns:
        Percentage in [0, 100] of targets predicted non-member; NaN when there are no targets.

    Raises:
        ValueError: An empty member or non-member set.
    """
    from sklearn.svm import SVC  # slow import, only when an attack runs

    members, nonmembers, targets = _as_2d(member_conf), _as_2d(nonmember_conf), _as_2d(target_conf)
    if len(members) == 0 or len(nonmembers) == 0:
        raise ValueError(f"MIA needs members and non-members, got {len(members)} and {len(nonmembers)}")
    if len(targets) == 0:
        return float("nan")
    n = min(len(members), len(nonmembers), max_per_set or len(members))
    rng = np.random.default_rng(seed)
    members = members[rng.permutation(len(members))[:n]]  # (n, F)
    nonmembers = nonmembers[rng.permutation(len(nonmembers))[:n]]  # (n, F)
    x = np.concatenate([members, nonmembers])  # (2n, F)
    y = np.concatenate([np.ones(n), np.zeros(n)])  # (2n,)
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    clf.fit(x, y)
    pred = clf.predict(targets)  # (N_t,) 1 = member
    return float(100.0 * (1.0 - pred.mean()))


def mia_efficacy(
    model: nn.Module,
    data: ImageData,
    split: Split,
    *,
    max_per_set: int = 2000,
    seed: int = 0,
    feature: str = "confidence",
    max_target: int | None = None,
) -> float:
    """MIA-efficacy of ``model`` on the forget set (Jia et al. 2023), in percent.

    Args:
        model: The model under attack.
        data: The dataset the split indexes.
        split: Members are ``split.retain_idx``; non-members are ``split.test_idx`` (retained classes only in
            class-wise mode); targets are ``split.forget_idx``.
        max_per_set: At most this many members and as many non-members (balanced by seeded subsampling).
        seed: Seeds the subsampling.
        feature: Attack feature, a key of ``MIA_FEATURES`` (default ``"confidence"``: softmax prob. of the true label).
        max_target: Classify at most this many (seeded) forget samples; None classifies all of D_f.

    Returns:
        The percentage of D_f predicted non-member (higher = more forgotten).
    """
    g = torch.Generator().manual_seed(seed)
    nonmember_idx = retained_test_idx(data, split)
    n = min(len(split.retain_idx), len(nonmember_idx), max_per_set)
    member_idx = draw_subset(split.retain_idx, n, g)
    nonmember_idx = draw_subset(nonmember_idx, n, g)
    target_idx = split.forget_idx if max_target is None else draw_subset(split.forget_idx, max_target, g)

    def feats(idx: torch.Tensor, which: str) -> torch.Tensor:
        return mia_features(logits_of(model, data, idx, which), labels_of(data, idx, which), feature)

    result = mia_from_confidences(
        feats(member_idx, "train"), feats(nonmember_idx, "test"), feats(target_idx, "train"), seed=seed
    )
    log.debug("MIA-efficacy (%s, %d per shadow set, %d targets): %.2f", feature, n, len(target_idx), result)
    return result
