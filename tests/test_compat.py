"""The guarded torchvision step: it makes torchvision importable, and does nothing where the compiled ops load."""

import subprocess
import sys


def test_torchvision_imports_after_guard():
    code = ("from opc_core.env.compat import ensure_torchvision; ensure_torchvision(); import torchvision, torch; "
            "import torchvision.transforms.v2; from torchvision.utils import make_grid; "
            "print(make_grid(torch.zeros(2, 3, 4, 4)).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([3," in out.stdout


def test_guard_is_noop_when_ops_already_defined():
    # Simulate a working install: the schemas exist before the guard runs, so it must not define them again
    # (a duplicate definition would abort the process).
    code = ("import torch; lib = torch.library.Library('torchvision', 'DEF'); "
            "lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor'); "
            "from opc_core.env.compat import ensure_torchvision, torchvision_patched; "
            "r = ensure_torchvision(); print('patched', r, torchvision_patched())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "patched False False" in out.stdout


def test_guard_is_idempotent():
    from opc_core.env.compat import ensure_torchvision

    first = ensure_torchvision()
    assert ensure_torchvision() == first
