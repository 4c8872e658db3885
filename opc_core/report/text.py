"""Plain-language explanations of every metric and attack, shown as tooltips and captions by the dashboard.

Each metric has a short label, a one-line explanation and its good direction ("higher", "lower", "closer to 0", ...).
The per-attack entries ("recovered_ua_<attack>") and the attack captions are read from the attacks' own metadata (the
recovery-attack registry and the inversion objectives) when asked for, so an attack added in one file appears here too.
The report and the pages read only these.
"""

from __future__ import annotations

from opc_core.attacks.inversion import OBJECTIVES
from opc_core.attacks.recovery import ATTACKS, get_attack

# key -> {"label", "help" (one line), "good" (the direction that means better / deeper forgetting)}
METRICS: dict[str, dict[str, str]] = {
    "ua": {
        "label": "UA",
        "good": "higher",
        "help": "Unlearning accuracy: 100 − accuracy on the forget set D_f; how much of D_f the model got wrong.",
    },
    "ra": {
        "label": "RA",
        "good": "higher",
        "help": "Retain accuracy: accuracy on the retain set D_r; what the model still knows of the kept data.",
    },
    "ta": {
        "label": "TA",
        "good": "higher",
        "help": "Test accuracy on held-out images (of the retained classes in class-wise unlearning).",
    },
    "mia": {
        "label": "MIA-efficacy",
        "good": "higher",
        "help": "Share of D_f a membership-inference SVC calls 'not a training member' (%).",
    },
    "forget_test_acc": {
        "label": "Forget-class test acc.",
        "good": "lower",
        "help": "Accuracy on the test images of the forgotten classes; near 0 once they are unlearned.",
    },
    "recovered_ua": {
        "label": "Recovered UA",
        "good": "higher",
        "help": "UA left after a recovery attack; high = the forgotten accuracy could not be restored.",
    },
    "psnr": {
        "label": "PSNR (dB)",
        "good": "lower",
        "help": "Peak signal-to-noise ratio of a gradient-inversion reconstruction vs the true image; low = the "
        "image was not recovered.",
    },
    "ssim": {
        "label": "SSIM",
        "good": "lower",
        "help": "Structural similarity (0–1) of a reconstruction vs the true image; low = the image was not recovered.",
    },
    "contraction_radius": {
        "label": "Contraction radius",
        "good": "lower",
        "help": "Spread of D_f's features relative to D_r's: 1 = as spread, 0 = one point (one-point contraction).",
    },
    "cka_forget": {
        "label": "CKA on D_f",
        "good": "lower",
        "help": "Linear CKA between original and unlearned features on D_f (0–1); low = the geometry "
        "changed. Degenerate when D_f collapsed.",
    },
    "cka_retain": {
        "label": "CKA on D_r",
        "good": "higher",
        "help": "Linear CKA between original and unlearned features on D_r; high = retained knowledge "
        "kept its geometry.",
    },
    "entropy_forget": {
        "label": "Entropy on D_f (nats)",
        "good": "higher (up to log K)",
        "help": "Mean prediction entropy on D_f; log K is the uniform guess a retrained model tends to give.",
    },
    "feat_norm_forget": {
        "label": "‖f(x)‖ on D_f",
        "good": "lower (OPC → 0)",
        "help": "Mean norm of the penultimate features on D_f; OPC's feature variant pulls it to 0.",
    },
    "feat_norm_retain": {
        "label": "‖f(x)‖ on D_r",
        "good": "stable",
        "help": "Mean norm of the penultimate features on D_r; should stay near the original's.",
    },
    "logit_norm_forget": {
        "label": "‖m(x)‖ on D_f",
        "good": "lower (OPC → 0)",
        "help": "Mean norm of the logits on D_f; OPC pulls it towards the origin.",
    },
    "logit_norm_retain": {
        "label": "‖m(x)‖ on D_r",
        "good": "stable",
        "help": "Mean norm of the logits on D_r; should stay near the original's.",
    },
    "norm_ratio": {
        "label": "Norm ratio D_f / D_r",
        "good": "lower",
        "help": "Mean feature norm of D_f divided by that of D_r at a block; near 0 = D_f contracted there.",
    },
    "probe_acc_forget": {
        "label": "Probe accuracy on D_f",
        "good": "lower",
        "help": "Accuracy of a linear probe at a block on D_f; high = the forgotten classes are still decodable there.",
    },
    "seconds": {"label": "Time (s)", "good": "lower", "help": "Wall time of the unlearning run on this device."},
    "steps": {"label": "Steps", "good": "—", "help": "Optimiser steps the method took."},
}


def _recovered_ua(name: str) -> dict[str, str]:
    """The metric entry of the recovered UA after recovery attack ``name``, from the attack's metadata."""
    spec = get_attack(name)
    return {
        "label": f"UA after {spec.label}",
        "good": "higher",
        "help": f"UA after the {spec.label} attack. {spec.help}",
    }


def _entry(key: str) -> dict[str, str] | None:
    """The entry of metric ``key``; a "recovered_ua_<attack>" key of a registered attack gets the attack's own."""
    if key in METRICS:
        return METRICS[key]
    name = key.removeprefix("recovered_ua_")
    return _recovered_ua(name) if name != key and name in ATTACKS else None


def attack_caption(name: str) -> str:
    """One line on recovery attack ``name``: its label, what it does and what the attacker has."""
    spec = get_attack(name)
    return f"**{spec.label}** ({spec.paper}): {spec.help} *Attacker holds:* {spec.threat_model}"


def inversion_caption(method: str) -> str:
    """One line on gradient-inversion objective ``method`` ("ig" or "dlg")."""
    obj = OBJECTIVES[method]
    return f"**{obj.label}** ({obj.paper}): {obj.help}"


def label(key: str) -> str:
    """The short label of a metric (the key itself when unknown)."""
    return (_entry(key) or {}).get("label", key)


def explain(key: str) -> str:
    """One line: the explanation and the good direction, e.g. for a tooltip; empty when unknown."""
    m = _entry(key)
    if m is None:
        return ""
    return f"{m['help']} Better: {m['good']}."


# --- guided reading: one or two plain sentences per chart, with the measured expected range beside the actual value --
READING_MARK = "How to read it:"  # every chart's caption starts with it (the browser test looks for it)
READINGS: dict[str, str] = {
    "split": "red is what the method must forget, grey what it must keep. The paper forgets 3 of 10 classes.",
    "loss": "each line is one term of the method's loss. OPC's norm term falls towards 0 while the retain "
    "cross-entropy stays low; a method that only pushes D_f's loss up (GA) shows it growing instead.",
    "eval": "UA (red) should climb to near 100 while RA (blue) stays near the original's: every method gets "
    "there, deep or shallow, so this chart alone cannot tell them apart.",
    "map": "each dot is one image: grey ones are kept, coloured ones are D_f by their true class. After shallow "
    "forgetting the forget classes stay apart in the original's map; after one-point contraction they merge into one "
    "blob. Read the numbers beside the map (UA after FM, probe inside D_f), not only the blob's size.",
    "frames": "press play or drag the slider: a deep method pulls D_f's classes together over the steps, a shallow "
    "method barely moves them.",
    "confusion": "rows are the forget classes, columns the class predicted. A collapsed forget set sends every row to "
    "one column; a shallow one spreads them over retained classes while its features still tell them apart.",
    "grid": "every method of the comparison in the same map: compare how far each one merges D_f's classes.",
    "depth": "left: D_f's feature size per block (near 0 = contracted there); right: how well a linear probe "
    "still reads the forgotten classes per block. Deep forgetting lowers both towards the output.",
    "recovery": "the first bar of each method is its UA before any attack; the others are the UA left after "
    "each attack. Shallow methods fall to low bars after FM; a deep method keeps its bars high.",
    "inversion": "each row rebuilds one forget image from one gradient of the model. A sharp image and a PSNR well "
    "above the no-information references (grey, mean image, class mean) mean the gradient still carries the image; "
    "compare each row with the original model's. The retrained model never saw D_f and can still leak: this attack "
    "measures how invertible a gradient is, not only memory.",
    "metrics": "UA and MIA measure forgetting, RA and TA what is kept. Most methods score alike here; the "
    "difference between shallow and deep shows only under the attacks.",
    "maps_grid": "one map per method, all in the original model's map: compare how tightly the red points gather.",
}
EXPECTED_FILE = "expected.json"  # in assets/demo, written by scripts/make_demo.py


def _expected() -> dict:
    import json

    from opc_core.env import paths

    path = paths.ASSETS / "demo" / EXPECTED_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


_EXPECTED: list[dict] = []


def method_key(method: str) -> str:
    """The method label the ranges are stored under, from what a page shows: "OPC-features (17dee7)" ->
    ``opc_features``, "OPC (paper: logits) [lam=2]" -> ``opc[lam=2]``, "ft (a1b2c3)" -> ``ft``."""
    import re

    from opc_core.methods.opc import LABELS

    name = re.sub(r" \([0-9a-f]{6}\)$", "", method)
    for base, shown in LABELS.items():
        if name == shown:
            return base
        if name.startswith(shown + " [") and name.endswith("]"):
            return f"{base}[{name[len(shown) + 2 : -1]}]"
    return name


def expected_range(method: str, key: str) -> tuple[float, float] | None:
    """The measured (min, max) of metric ``key`` for the method a page names ``method`` (a label, a display name,
    either with the run's short id; assets/demo/expected.json), or None."""
    if not _EXPECTED:
        _EXPECTED.append(_expected())
    lo_hi = (_EXPECTED[0].get("ranges", {}).get(method_key(method)) or {}).get(key)
    return None if lo_hi is None else (float(lo_hi[0]), float(lo_hi[1]))


def _decimals(*values: float) -> int:
    """Decimals to print a group of values with: 2 below 1 (SSIM, radii), 1 below 20 (PSNR in dB), else 0 (%)."""
    top = max(abs(v) for v in values)
    return 2 if top < 1 else 1 if top < 20 else 0


def expectation(method: str, key: str, value: float | None) -> str:
    """E.g. ``opc[layer=features]: UA after FM expected 55–65; this run: 57`` (the range only when measured); the
    range and the value are printed with the same decimals."""
    rng = expected_range(method, key)
    shown = [*(rng or ()), *(() if value is None else (value,))]
    d = _decimals(*shown) if shown else 0
    this = "—" if value is None else f"{value:.{d}f}"
    if rng is None:
        return f"{method}: {label(key)} {this}"
    lo, hi = f"{rng[0]:.{d}f}", f"{rng[1]:.{d}f}"
    measured = lo if lo == hi else f"{lo}–{hi}"
    return f"{method}: {label(key)} expected {measured}; this run: {this}"


def reading(chart: str, values: list[tuple[str, str, float | None]] = ()) -> str:
    """The caption of ``chart``: the mark, its sentences, then ``expectation`` for each ``(method, key, value)``."""
    text = f"**{READING_MARK}** {READINGS[chart]}"
    lines = [expectation(*v) for v in values]
    return text + ("  \n" + "  \n".join(lines) if lines else "")


def expected_source() -> str:
    """Where the expected ranges come from, in one line."""
    return _expected().get("source", "")
