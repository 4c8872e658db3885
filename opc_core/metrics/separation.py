"""Scale-free separation measures inside the forget set (docs/science.md §5, §9): can D_f's classes still be told apart?

The contraction radius (representation.py) compares spreads and so depends on scale: a forget set squeezed into a
small region can still be perfectly separable inside it. These measures do not change when the features are
rescaled:

- **probe inside D_f**: a linear probe (standardised features, logistic regression) trained and scored by seeded
  two-fold cross-validation on D_f alone, with its true labels: the accuracy with which the forget classes (or, in
  random-sample mode, the classes present in D_f) can still be told apart from each other. Chance is the share of
  the largest class.
- **Fisher ratio**: between-class over within-class scatter (traces) of D_f's classes, on features standardised per
  dimension (``standardise=True``, the default): 0 when the classes share one point; unchanged under any rescaling of
  any feature. Without the standardisation the traces are dominated by the widest directions, so a narrow direction
  that still separates the classes hardly counts (measured: OPC on the logits keeps a raw ratio of 0.01 of the
  original's on digits while a probe still separates its forget classes at 86%).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def fisher_ratio(f: torch.Tensor, y: torch.Tensor, standardise: bool = True) -> float:
    """tr(S_b) / tr(S_w) of features ``f`` (N, D) with labels ``y`` (N,), each dimension first scaled to unit variance
    (``standardise``; constant dimensions dropped); 0.0 when every point is the same, ``inf`` when the classes are
    distinct points with no spread inside; NaN for fewer than two classes."""
    x, labels = f.detach().cpu().double().reshape(len(f), -1), y.cpu()
    if standardise:
        sd = x.std(0)
        keep = sd > 1e-12 * max(float(sd.max()) if len(sd) else 0.0, 1e-300)
        x = (x[:, keep] - x[:, keep].mean(0)) / sd[keep] if bool(keep.any()) else torch.zeros(len(x), 1).double()
    classes = labels.unique()
    if len(classes) < 2:
        return float("nan")
    mu = x.mean(0)
    between = within = 0.0
    for c in classes:
        xc = x[labels == c]
        mc = xc.mean(0)
        between += len(xc) * float(((mc - mu) ** 2).sum())
        within += float(((xc - mc) ** 2).sum())
    scale = float((x**2).sum()) + 1e-300
    if within <= 1e-12 * scale:
        return 0.0 if between <= 1e-12 * scale else math.inf
    return between / within


def probe_inside(f: torch.Tensor, y: torch.Tensor, *, seed: int = 0, C: float = 1.0) -> dict[str, float]:
    """Two-fold cross-validated accuracy (%) of a linear probe telling D_f's classes apart, and chance (%).

    Args:
        f: features of (a sample of) D_f, (N, D). y: their true labels (N,). seed: the folds' shuffle.
        C: inverse L2 strength of the logistic regression.

    Returns:
        ``{"acc": %, "chance": %}``; both NaN when fewer than two classes have at least two samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, labels = f.detach().cpu().double().reshape(len(f), -1).numpy(), y.cpu().numpy()
    classes, counts = np.unique(labels, return_counts=True)
    keep = np.isin(labels, classes[counts >= 2])
    x, labels = x[keep], labels[keep]
    if len(np.unique(labels)) < 2:
        return {"acc": float("nan"), "chance": float("nan")}
    correct = 0
    for train, test in StratifiedKFold(2, shuffle=True, random_state=seed).split(x, labels):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        clf.fit(x[train], labels[train])
        correct += int((clf.predict(x[test]) == labels[test]).sum())
    chance = 100.0 * np.bincount(labels).max() / len(labels)
    return {"acc": 100.0 * correct / len(labels), "chance": float(chance)}


def forget_confusion(model, data, split) -> tuple[list[int], np.ndarray]:
    """Where D_f's predictions go: ``(forget classes, counts (n_forget_classes, K))``, rows the true class, columns
    the predicted one (random-sample splits: every class present in D_f)."""
    from opc_core.train.inference import labels_of, logits_of

    y = labels_of(data, split.forget_idx, "train").numpy()
    pred = logits_of(model, data, split.forget_idx).argmax(1).cpu().numpy()
    classes = list(split.forget_classes) or sorted({int(c) for c in y})
    k = data.num_classes
    counts = np.stack([np.bincount(pred[y == c], minlength=k) for c in classes]) if classes else np.zeros((0, k))
    return classes, counts
