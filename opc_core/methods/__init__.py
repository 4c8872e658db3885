"""Unlearning methods: one module per method (its Config and its loss), each registering itself; importing this
package registers them all.

Import order is registration order, which is display order: OPC first, then the 13 baselines of the paper's figure.
"""

from opc_core.methods.base import (
    METHODS,
    MethodSpec,
    Plan,
    UnlearnConfig,
    UnlearnContext,
    describe_fields,
    get_method,
    list_methods,
    load_presets,
    make_config,
    register_method,
)

# isort: off
from opc_core.methods import opc  # noqa: F401
from opc_core.methods import retrain  # noqa: F401
from opc_core.methods import ft  # noqa: F401
from opc_core.methods import ga  # noqa: F401
from opc_core.methods import ngd  # noqa: F401
from opc_core.methods import neggrad_plus  # noqa: F401
from opc_core.methods import rl  # noqa: F401
from opc_core.methods import salun  # noqa: F401
from opc_core.methods import l1_sparse  # noqa: F401
from opc_core.methods import be  # noqa: F401
from opc_core.methods import bt  # noqa: F401
from opc_core.methods import euk  # noqa: F401
from opc_core.methods import cfk  # noqa: F401
from opc_core.methods import scrub  # noqa: F401
# isort: on

__all__ = [
    "METHODS",
    "MethodSpec",
    "Plan",
    "UnlearnConfig",
    "UnlearnContext",
    "describe_fields",
    "get_method",
    "list_methods",
    "load_presets",
    "make_config",
    "register_method",
]
