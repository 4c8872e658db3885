"""Where OPC Lab keeps things: the project's shipped assets and the user's writable home."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSETS = PROJECT_ROOT / "assets"
SHIPPED_ZOO = ASSETS / "zoo"


def home() -> Path:
    """The writable home (run store, local zoo, data): ``$OPC_LAB_HOME`` or ``.opc_lab`` in the project."""
    env = os.environ.get("OPC_LAB_HOME")
    path = Path(env).expanduser() if env else PROJECT_ROOT / ".opc_lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_zoo() -> Path:
    """Folder of checkpoints trained or uploaded on this machine."""
    path = home() / "zoo"
    path.mkdir(parents=True, exist_ok=True)
    return path
