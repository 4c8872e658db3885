"""The named one-click comparisons of shallow vs deep forgetting: ``fast`` (the home page's first button, under 90 s
on a quiet 2-core CPU, without gradient inversion) and ``full`` (every method the shipped demo shows, each with its
tuned preset, and the gradient inversion; several minutes).

Both run the benchmark workflow on the embedded default (Fashion-MNIST subset, the shipped small CNN, classes 0, 1, 2
forgotten). ``scripts/bench_preset.py`` measures where their time goes.
"""

from __future__ import annotations

from opc_core.runs.record import BenchParams

COMMON = {"dataset": "fashion_mnist_small", "model": "cnn_small", "forget_classes": [0, 1, 2], "seed": 0}
PRESETS: dict[str, dict] = {
    "fast": {
        **COMMON,
        # the lesson in three runs: OPC-features (deep here), FT (shallow) and the retrain reference, shortened
        # to fit 90 s on a quiet 2-core CPU (scripts/bench_preset.py; the full preset and the shipped demo show the
        # paper's OPC). No gradient inversion: a reconstruction worth looking at takes ~100 s per model for 8 images
        # here (2 restarts × 1,000 iterations), and 200 iterations give noise (docs/science.md §7, §9); the Inversion
        # page runs it on this comparison in one click and shows the shipped demo's gallery meanwhile.
        "methods": ["opc_features:epochs=1", "ft", "retrain:epochs=2"],
        "mia": False,  # two SVC fits per model; for whole classes every method scores ~100 (docs/results.md)
        "inversion_images": 0,
    },
    "full": {
        **COMMON,
        "methods": ["opc", "opc_features", "retrain", "ft", "ga", "rl", "salun", "scrub"],
    },
}
BLURBS = {
    "fast": "**Fast** (about 70 s on a quiet 2-core CPU): OPC on the penultimate features (deep), FT (shallow) and "
    "retrain (the reference), shortened, each followed by the recovery attacks. Gradient inversion is one more click "
    "on the Inversion page (about 100 s per model for 8 images on an idle CPU, more under load; the page says how "
    "long before it starts).",
    "full": "**Full** (several minutes): the shipped demo's comparison — both OPC variants, retrain (the "
    "reference), FT, GA, RL, SalUn and SCRUB with their tuned presets, every attack, a longer inversion.",
}


def preset_params(name: str) -> BenchParams:
    """The benchmark parameters of preset ``name``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return BenchParams(**PRESETS[name])


def describe(name: str) -> str:
    """One paragraph saying what preset ``name`` runs."""
    return BLURBS[name]
