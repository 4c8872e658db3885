"""The guarded torchvision step: it makes torchvision importable, and does nothing where the compiled ops load."""

import subprocess
import sys


def test_torchvision_imports_after_guard():
    code = (
        "from opc_core.env.compat import ensure_torchvision; ensure_torchvision(); import torchvision, torch; "
        "import torchvision.transforms.v2; from torchvision.utils import make_grid; "
        "print(make_grid(torch.zeros(2, 3, 4, 4)).shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([3," in out.stdout


def test_guard_is_noop_when_ops_already_defined():
    # Simulate a working install: the schemas exist before the guard runs, so it must not define them again
    # (a duplicate definition would abort the process).
    code = (
        "import torch; lib = torch.library.Library('torchvision', 'DEF'); "
        "lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor'); "
        "from opc_core.env.compat import ensure_torchvision, torchvision_patched; "
        "r = ensure_torchvision(); print('patched', r, torchvision_patched())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "patched False False" in out.stdout


def test_guard_defines_the_fallback_once():
    # Force the fallback (the compiled library cannot load) whatever this install is, then call the guard twice: the
    # second call must neither define the schemas again (that raises, or aborts the process) nor report a different
    # outcome. torchvision itself is not imported here: on a working install its library would clash with the fallback.
    code = (
        "import pathlib, tempfile, torch; from opc_core.env import compat; "
        "bogus = pathlib.Path(tempfile.mkdtemp()) / '_C.so'; bogus.write_bytes(b'not a library'); "
        "compat._compiled_ops_library = lambda: str(bogus); "
        "first = compat.ensure_torchvision(); second = compat.ensure_torchvision(); "
        "torch._C._dispatch_find_schema_or_throw('torchvision::qnms', ''); "
        "print('calls', first, second, compat.torchvision_patched(), bool(compat._STATE['reason']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "calls True True True True" in out.stdout
