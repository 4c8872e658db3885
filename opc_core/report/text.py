"""Plain-language explanations of every metric and attack, shown as tooltips and captions by the dashboard.

A plain module of dicts (it imports nothing, and never streamlit): each metric has a short label, a one-line
explanation and its good direction ("higher", "lower", "closer to 0", ...). The report and the pages read only these.
"""

from __future__ import annotations

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
    "recovered_ua_fm": {
        "label": "UA after FM",
        "good": "higher",
        "help": "UA after the feature-mapping attack (the paper's): a linear map unlearned→original "
        "features, fitted on held-out data.",
    },
    "recovered_ua_hr": {
        "label": "UA after HR",
        "good": "higher",
        "help": "UA after head re-fitting: a new linear head fitted on held-out data.",
    },
    "recovered_ua_prototype": {
        "label": "UA after prototype",
        "good": "higher",
        "help": "UA after writing the mean feature of k leaked forget samples into the head.",
    },
    "recovered_ua_probe": {
        "label": "UA after probe",
        "good": "higher",
        "help": "UA after a logistic-regression probe trained on unlearned features of held-out data.",
    },
    "recovered_ua_relearn": {
        "label": "UA after relearn",
        "good": "higher",
        "help": "UA after a few optimiser steps (Adam by default) on k leaked forget samples.",
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

# What each recovery attack assumes the attacker has (SCIENCE.md §6).
ATTACKS: dict[str, str] = {
    "fm": "FM (the paper's attack): unlearned and original models plus held-out calibration data, never D_f; "
    "fits a linear map from unlearned to original features in closed form.",
    "hr": "HR: the unlearned model and the original model's logits on held-out data; fits a new linear head.",
    "prototype": "Prototype: k leaked forget samples; their mean feature is written into the head row of their class.",
    "probe": "Linear probe: labelled held-out data; logistic regression on the unlearned model's features.",
    "relearn": "Relearn: k leaked forget samples; a few Adam steps on them, scored on the rest of D_f.",
}

INVERSION: dict[str, str] = {
    "ig": "Inverting Gradients (Geiping et al. 2020): optimise a dummy image so its gradient's cosine similarity "
    "with the observed gradient is maximal, plus a total-variation prior. Knows the label.",
    "dlg": "DLG (Zhu et al. 2019): optimise a dummy image to match the observed gradient in L2.",
}


def label(key: str) -> str:
    """The short label of a metric (the key itself when unknown)."""
    return METRICS.get(key, {}).get("label", key)


def explain(key: str) -> str:
    """One line: the explanation and the good direction, e.g. for a tooltip; empty when unknown."""
    m = METRICS.get(key)
    if m is None:
        return ""
    return f"{m['help']} Better: {m['good']}."
