"""OPC Lab's library: data, models, the training loop, unlearning methods, metrics, attacks and the run store.

It never imports streamlit; every workflow runs headless through ``python -m opc_core``.
"""

from opc_core.env.compat import ensure_torchvision as _ensure_torchvision

__version__ = "0.1.0"

_ensure_torchvision()
