"""Metrics of OPC Lab (docs/science.md §5): UA/RA/TA, MIA-efficacy, representation statistics, PSNR/SSIM, and
one ``evaluate()`` that scores an unlearned model against the original."""

from opc_core.metrics.accuracy import (
    accuracy_from_logits,
    per_class_accuracy,
    retained_test_idx,
    split_test_masks,
    unlearning_accuracies,
)
from opc_core.metrics.evaluate import evaluate
from opc_core.metrics.image import psnr, ssim
from opc_core.metrics.mia import MIA_FEATURES, mia_efficacy, mia_features, mia_from_confidences
from opc_core.metrics.representation import (
    contraction_radius,
    linear_cka,
    linear_cka_detail,
    prediction_entropy,
    representation_stats,
)

__all__ = [
    "MIA_FEATURES",
    "accuracy_from_logits",
    "contraction_radius",
    "evaluate",
    "linear_cka",
    "linear_cka_detail",
    "mia_efficacy",
    "mia_features",
    "mia_from_confidences",
    "per_class_accuracy",
    "prediction_entropy",
    "psnr",
    "representation_stats",
    "retained_test_idx",
    "split_test_masks",
    "ssim",
    "unlearning_accuracies",
]
