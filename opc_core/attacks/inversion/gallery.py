"""The result file of an inversion job: the same forget images reconstructed from several models (docs/science.md §7).

A :class:`Gallery` holds the attacked images (training indices, labels, true pixels) and, per model key in order
("original", then one run id per unlearned model), a :class:`Reconstruction`: final images, PSNR, SSIM and snapshots
at shared iteration steps, and the no-information reference scores of the same images (flat grey, dataset mean, class
mean; :mod:`.references`). On disk it is one ``.npz`` with fixed array names; the model keys are an array of strings,
and models are stacked along the first axis in that order, so loading needs no pickle and no name parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from opc_core.attacks.inversion.attack import InversionResult
from opc_core.attacks.inversion.references import inconclusive

FORMAT_VERSION = 2
_NAMES = (
    "version",
    "idx",
    "labels",
    "true",
    "steps",
    "keys",
    "images",
    "psnr",
    "ssim",
    "snapshots",
    "ref_keys",
    "ref_psnr",
    "ref_ssim",
    "init",
)


@dataclass(frozen=True)
class Reconstruction:
    """One model's reconstructions of the gallery's images.

    Attributes:
        images: Final reconstructions (N, C, H, W), float32 pixels in [0, 1].
        psnr: PSNR against the true images (N,), dB. ssim: SSIM against them (N,).
        snapshots: The reconstructions at the gallery's ``steps`` (S, N, C, H, W).
    """

    images: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray
    snapshots: np.ndarray


@dataclass
class Gallery:
    """The attacked images and each model's reconstructions of them, keyed and ordered by model.

    Attributes:
        idx: Training-set indices of the images (N,). labels: Their labels (N,).
        true: The true images (N, C, H, W), float32 pixels in [0, 1].
        steps: Iterations at which snapshots were taken (S,), shared by every model.
        models: Model key -> :class:`Reconstruction`, in display order.
        references: Reference key ("grey", "mean", "class_mean") -> {"psnr": (N,), "ssim": (N,)}.
        init: The reconstructions' starting image (``InversionConfig.init``).
    """

    idx: np.ndarray
    labels: np.ndarray
    true: np.ndarray
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    models: dict[str, Reconstruction] = field(default_factory=dict)
    references: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    init: str = ""

    @property
    def keys(self) -> list[str]:
        """Model keys in display order."""
        return list(self.models)

    def reference_means(self) -> dict[str, dict[str, float]]:
        """``{reference: {"psnr": mean dB, "ssim": mean}}`` over the gallery's images."""
        return {k: {m: float(np.mean(v[m])) for m in ("psnr", "ssim")} for k, v in self.references.items()}

    @property
    def inconclusive(self) -> bool | None:
        """Whether the original model's reconstructions fail to beat the best reference by the margin (None when the
        gallery has no original model or no references)."""
        if "original" not in self.models or not self.references:
            return None
        psnr = float(np.mean(self.models["original"].psnr))
        return inconclusive(psnr, {k: v["psnr"] for k, v in self.reference_means().items()})

    def add(self, key: str, result: InversionResult) -> None:
        """Add model ``key``'s :class:`InversionResult` (its reconstructions, scores and snapshots).

        Raises:
            ValueError: on a duplicate key, images that do not match the true images, or snapshot steps that differ
                from those of the models already added.
        """
        if key in self.models:
            raise ValueError(f"model {key!r} is already in the gallery")
        steps = np.asarray([int(s) for s, _ in result.snapshots], dtype=np.int64)
        if self.models and not np.array_equal(steps, self.steps):
            raise ValueError(f"snapshot steps {steps.tolist()} differ from the gallery's {self.steps.tolist()}")
        frames = [_array(x) for _, x in result.snapshots]
        rec = Reconstruction(
            images=_array(result.reconstructions),
            psnr=_array(result.psnr),
            ssim=_array(result.ssim),
            snapshots=np.stack(frames) if frames else np.zeros((0, *self.true.shape), np.float32),
        )
        n = len(self.true)
        if rec.images.shape != self.true.shape or rec.psnr.shape != (n,) or rec.ssim.shape != (n,):
            raise ValueError(f"model {key!r}: reconstructions do not match the {n} true images")
        if rec.snapshots.shape[1:] != self.true.shape:
            raise ValueError(f"model {key!r}: snapshots do not match the {n} true images")
        self.steps = steps
        self.models[key] = rec

    def save(self, path: str | Path) -> Path:
        """Write the gallery as one compressed ``.npz`` with fixed array names; returns the path."""
        path = Path(path)
        recs = list(self.models.values())
        n, shape = len(self.true), self.true.shape

        def stacked(name: str, empty: tuple[int, ...]) -> np.ndarray:
            return np.stack([getattr(r, name) for r in recs]) if recs else np.zeros(empty, np.float32)

        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                version=np.array(FORMAT_VERSION),
                idx=np.asarray(self.idx, dtype=np.int64),
                labels=np.asarray(self.labels, dtype=np.int64),
                true=np.asarray(self.true, dtype=np.float32),
                steps=np.asarray(self.steps, dtype=np.int64),
                keys=np.array(self.keys, dtype=np.str_),
                images=stacked("images", (0, *shape)),  # (M, N, C, H, W)
                psnr=stacked("psnr", (0, n)),  # (M, N)
                ssim=stacked("ssim", (0, n)),  # (M, N)
                snapshots=stacked("snapshots", (0, len(self.steps), *shape)),  # (M, S, N, C, H, W)
                ref_keys=np.array(list(self.references), dtype=np.str_),
                ref_psnr=_refs(self.references, "psnr", n),  # (R, N)
                ref_ssim=_refs(self.references, "ssim", n),  # (R, N)
                init=np.array(self.init, dtype=np.str_),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """Read a gallery written by :meth:`save`.

        Raises:
            ValueError: when the file is not a gallery of this format (e.g. an older inversion result).
        """
        with np.load(Path(path), allow_pickle=False) as z:
            missing = [k for k in _NAMES if k not in z.files]
            if missing or int(z["version"]) != FORMAT_VERSION:
                raise ValueError(f"{path} is not an inversion gallery of format {FORMAT_VERSION}")
            a = {k: z[k] for k in _NAMES}
        models = {
            str(key): Reconstruction(a["images"][m], a["psnr"][m], a["ssim"][m], a["snapshots"][m])
            for m, key in enumerate(a["keys"])
        }
        refs = {str(key): {"psnr": a["ref_psnr"][r], "ssim": a["ref_ssim"][r]} for r, key in enumerate(a["ref_keys"])}
        return cls(a["idx"], a["labels"], a["true"], a["steps"], models, refs, str(a["init"]))


def _array(x: torch.Tensor) -> np.ndarray:
    """A tensor (any device) as a float32 numpy array."""
    return x.detach().float().cpu().numpy()


def _refs(references: dict[str, dict[str, np.ndarray]], metric: str, n: int) -> np.ndarray:
    """The references' ``metric`` stacked (R, N) in key order."""
    rows = [np.asarray(v[metric], dtype=np.float32) for v in references.values()]
    return np.stack(rows) if rows else np.zeros((0, n), np.float32)
