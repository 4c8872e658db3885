"""Every term and symbol the dashboard uses, in plain words (the Glossary page and the class handout read it).

Each entry is ``(term, symbol or abbreviation, plain explanation, section of docs/science.md)``; the metric entries
of :mod:`opc_core.report.text` are listed too, so the two never disagree.
"""

from __future__ import annotations

from opc_core.report import text as ui_text

GROUPS: dict[str, list[tuple[str, str, str, str]]] = {
    "The setting": [
        (
            "Machine unlearning",
            "",
            "Removing what a trained model learned from some of its training data, without training it again "
            "from scratch.",
            "§1",
        ),
        ("Forget set", "D_f", "The training images the model must forget (here: every image of some classes).", "§2"),
        ("Retain set", "D_r", "The rest of the training set: what the model must keep knowing.", "§2"),
        (
            "Calibration set",
            "D_cal",
            "Held-out images (never training images) that an attacker is assumed to have; half of the test split.",
            "§2",
        ),
        ("Class-wise forgetting", "", "Forgetting whole classes, e.g. 3 of 10 (the paper's headline).", "§2"),
        ("Original model", "", "The trained model before any unlearning: what every method starts from.", "§2"),
        (
            "Model",
            "m = g ∘ f",
            "The network: f turns an image into features, g (the head) turns them into logits.",
            "§2",
        ),
        ("Features", "f(x)", "The numbers the network computes just before its last layer (penultimate layer).", "§2"),
        ("Logits", "m(x)", "The network's raw class scores; the softmax turns them into probabilities.", "§2"),
        ("Norm", "‖·‖", "The length of a vector; ‖f(x)‖ near 0 means the features of x sit at the origin.", "§3"),
        ("Step", "", "One optimiser update on one batch of images.", "§3"),
        ("Epoch", "", "One pass over the training images a method uses.", "§3"),
    ],
    "Shallow and deep forgetting": [
        (
            "Shallow forgetting",
            "",
            "The outputs on D_f change, but the features still separate and encode D_f, so it can be read back.",
            "§1",
        ),
        ("Deep forgetting", "", "The features no longer carry D_f: nothing is left for an attacker to read.", "§1"),
        (
            "One-point contraction",
            "",
            "Every forget image is mapped to the same point; then no later map can tell them apart again.",
            "§1",
        ),
        (
            "OPC",
            "",
            "One-Point-Contraction unlearning (Jung et al., arXiv 2507.07754): cross-entropy on D_r plus λ times "
            "the norm of D_f's representation, pulled to 0.",
            "§3",
        ),
        ("OPC on the logits", "opc", "OPC as the paper specifies it: the logits m(x) of D_f are pulled to 0.", "§3"),
        (
            "OPC on the features (OPC-features)",
            "opc_features",
            "OPC on the penultimate features f(x): the variant that reaches deep forgetting here.",
            "§3",
        ),
        ("Weight of the contraction", "λ", "How strongly OPC pulls D_f's norm to 0 against keeping D_r.", "§3"),
        ("Norm exponent", "p", "OPC's penalty is ‖h(x)‖ to the power p (1 or 2).", "§3"),
    ],
    "Methods": [
        ("Retrain", "retrain", "Train from scratch on D_r only: the reference every method is measured against.", "§4"),
        ("Fine-tuning", "FT", "Keep training on D_r only and let D_f fade.", "§4"),
        ("Gradient ascent", "GA", "Increase the loss on D_f.", "§4"),
        ("Negative gradient", "NGD", "Loss on D_r minus loss on D_f in one mixed batch.", "§4"),
        ("NegGrad+", "", "A weighted difference of the losses on D_r and D_f.", "§4"),
        ("Random labels", "RL", "Train D_f with random wrong labels, and D_r with its true labels.", "§4"),
        ("SalUn", "", "RL that updates only the weights that matter most for D_f.", "§4"),
        ("ℓ1-sparse", "l1_sparse", "FT with an ℓ1 penalty on the weights.", "§4"),
        ("Boundary expanding", "BE", "Send D_f to an extra shadow class, then remove it.", "§4"),
        ("Bad teacher", "BT", "Copy the original on D_r and a random network on D_f.", "§4"),
        ("EU-k / CF-k", "", "Re-initialise (EU-k) or fine-tune only (CF-k) the last k stages on D_r.", "§4"),
        ("SCRUB", "", "A student that stays close to the original on D_r and moves away from it on D_f.", "§4"),
    ],
    "Attacks": [
        ("Recovery attack", "", "An attempt to bring the forgotten accuracy back without the forget images.", "§6"),
        ("Recovered UA", "UA after X", "The UA left after attack X: high means the forgetting survived.", "§6"),
        ("Gradient inversion", "", "Rebuilding an image from the gradient a model produces on it.", "§7"),
        ("Inverting Gradients", "IG", "Gradient inversion that matches gradient directions (cosine).", "§7"),
        ("Deep leakage from gradients", "DLG", "Gradient inversion that matches gradients by squared error.", "§7"),
        ("Total variation prior", "TV", "A penalty that keeps reconstructed images smooth.", "§7"),
        (
            "Where does the information live?",
            "diagnostic",
            "FM restricted to what the head can see (its row space) or cannot see (its null space), a probe inside "
            "D_f and a Fisher ratio: whether the forgotten classes survive in the features the head ignores.",
            "§6",
        ),
    ],
    "Views": [
        ("UMAP", "", "A non-linear 2-D map of high-dimensional points that keeps neighbours together.", "§8"),
        ("PCA", "", "The 2-D linear projection that keeps the most variance.", "§8"),
        ("Shared map", "", "Fitted on the original model's features; every other model's points placed in it.", "§8"),
        ("Snapshot", "", "The features of a fixed sample, stored at regular steps during unlearning.", "§8"),
        ("Depth view", "", "Per block of the network: how small D_f's features are and how decodable.", "§8"),
        ("Linear probe", "", "A logistic regression trained on a block's features to read the class out.", "§8"),
        ("Preset", "", "Tuned settings of a method for a dataset; also a one-click comparison (fast or full).", ""),
        ("Shipped demo", "", "A finished comparison computed by scripts/make_demo.py, shipped with the app.", ""),
        ("Run", "", "One stored job (an unlearning, an attack, a comparison), named method · forget set · time.", ""),
    ],
}
METRIC_KEYS = (
    "ua",
    "ra",
    "ta",
    "mia",
    "forget_test_acc",
    "contraction_radius",
    "cka_forget",
    "cka_retain",
    "entropy_forget",
    "feat_norm_forget",
    "logit_norm_forget",
    "norm_ratio",
    "probe_acc_forget",
    "psnr",
    "ssim",
)


def entries() -> dict[str, list[tuple[str, str, str, str]]]:
    """Every group of terms, the metrics last (label, key, explanation with its good direction)."""
    metrics = [(ui_text.label(k), k, ui_text.explain(k), "§5") for k in METRIC_KEYS]
    return {**GROUPS, "Metrics": metrics}
