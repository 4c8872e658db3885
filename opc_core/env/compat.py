"""Guarded torchvision compatibility step.

The torchvision wheel on the package registry is built against CUDA torch. Next to a CPU-only torch its compiled ops
library cannot load, and ``import torchvision`` then fails with ``operator torchvision::nms does not exist`` because
one module registers fake kernels for ``nms``/``qnms`` without checking that the operators exist. This module defines
the two operator schemas *only* when the compiled library fails to load; on a working install it does nothing (a
duplicate definition would abort the process). Call :func:`ensure_torchvision` before the first torchvision import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os

import torch

log = logging.getLogger(__name__)

_STATE: dict[str, object] = {"done": False, "patched": False, "reason": ""}


def _compiled_ops_library() -> str | None:
    """Path of torchvision's compiled ops library (``_C*.so``), without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(root, "_C" + suffix)
        if os.path.exists(path):
            return path
    return None


def _ops_defined() -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision() -> bool:
    """Make ``import torchvision`` work next to a CPU-only torch.

    Returns:
        True if the fallback schemas were defined (the compiled ops could not load), False if nothing was needed.
    """
    if _STATE["done"]:
        return bool(_STATE["patched"])
    _STATE["done"] = True
    if _ops_defined():
        return False
    lib_path = _compiled_ops_library()
    if lib_path is None:
        return False  # torchvision absent: the import error will speak for itself
    try:
        torch.ops.load_library(lib_path)
    except (OSError, RuntimeError) as exc:
        _STATE["reason"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if _ops_defined():
        return False
    # The compiled library did not load: define the two schemas that torchvision registers fake kernels for.
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _STATE["lib"] = lib  # keep the Library object alive, or the definitions are dropped
    _STATE["patched"] = True
    log.info("torchvision compiled ops unavailable (%s); defined nms/qnms schemas", _STATE["reason"])
    return True


def torchvision_patched() -> bool:
    """Whether :func:`ensure_torchvision` had to define the fallback schemas."""
    return bool(_STATE["patched"])
