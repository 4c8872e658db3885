"""FT, fine-tuning on the retain set (Warnecke et al., "Machine Unlearning of Features and Labels", NDSS 2023;
the "FT" baseline of Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

Forgetting by catastrophic forgetting: keep training the original model on D_r only,

    L(θ) = CE(m_θ(x_r), y_r).
"""

from __future__ import annotations

from dataclasses import dataclass

from opc_core.methods.base import Plan, UnlearnConfig, register_method
from opc_core.methods.common import retain_ce


@dataclass(frozen=True)
class Config(UnlearnConfig):
    pass


register_method(
    "ft",
    Config,
    "Fine-tune on the retain set only (forgetting by catastrophic forgetting)",
    plan=Plan(streams=("retain",)),
    paper="Warnecke et al., NDSS 2023; Jia et al., NeurIPS 2023",
)(retain_ce)
