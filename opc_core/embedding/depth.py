"""How deep the forgetting goes: per block of a model, how small the forget set's features are next to the retain
set's, and how well a linear probe still reads the forgotten classes out of them (docs/science.md §8).

Shallow forgetting leaves the early and middle blocks as they were: the probe still decodes D_f there. One-point
contraction of the penultimate features should show a falling norm ratio and probe accuracy towards the output.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from opc_core.data import ImageData, Split, draw_subset
from opc_core.env.device import model_device


@torch.inference_mode()
def block_features(
    model: nn.Module, data: ImageData, idx: torch.Tensor, split: str = "train", batch_size: int = 512
) -> dict[str, np.ndarray]:
    """Pooled features of every named block (and logits) for the images ``idx``: ``{block: (N, C)}``, input to
    output."""
    x_all = data.train_x if split == "train" else data.test_x
    device = model_device(model)
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(idx), batch_size):
        sel = idx[start : start + batch_size].to(x_all.device)
        out = model.features_at(data.normalize(x_all[sel]).to(device))
        for name, t in out.items():
            parts.setdefault(name, []).append(t.float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _norm_ratio(forget: np.ndarray, retain: np.ndarray) -> float:
    """Mean feature norm on D_f over the same on D_r."""
    return float(np.linalg.norm(forget, axis=1).mean() / max(np.linalg.norm(retain, axis=1).mean(), 1e-12))


def _probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Accuracy in percent of a logistic regression on standardised features, fitted on one set, scored on another."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    probe = LogisticRegression(max_iter=300).fit(scaler.transform(train_x), train_y)
    return 100.0 * float((probe.predict(scaler.transform(test_x)) == test_y).mean())


def depth_profile(
    models: Mapping[str, nn.Module], data: ImageData, split: Split, *, n: int = 600, seed: int = 0
) -> list[dict]:
    """For each named block: forget-vs-retain norm ratio, and a linear probe's accuracy on D_f.

    The probe (logistic regression on standardised block features) is trained on the calibration images, which hold
    every class, and scored on a sample of D_f: how linearly decodable the forgotten classes still are at that depth.
    At most ``n`` images of D_f, D_r and D_cal each, drawn with ``seed`` (the same for every model).

    Returns:
        Rows ``{"model", "block", "depth", "norm_ratio", "probe_acc_forget"}`` for each model and block.
    """
    gen = torch.Generator().manual_seed(seed)
    f_idx, r_idx, c_idx = (draw_subset(i, n, gen) for i in (split.forget_idx, split.retain_idx, split.cal_idx))
    y_f = data.train_y.cpu()[f_idx].numpy()
    y_c = data.test_y.cpu()[c_idx].numpy()
    rows = []
    for name, model in models.items():
        ff, fr = block_features(model, data, f_idx), block_features(model, data, r_idx)
        fc = block_features(model, data, c_idx, split="test")
        for depth, block in enumerate(ff):
            rows.append(
                {
                    "model": name,
                    "block": block,
                    "depth": depth,
                    "norm_ratio": _norm_ratio(ff[block], fr[block]),
                    "probe_acc_forget": _probe_accuracy(fc[block], y_c, ff[block], y_f),
                }
            )
    return rows
