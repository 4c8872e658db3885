"""The code base passes its own style settings (pyproject.toml: ruff check and ruff format, 120-character lines)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).with_name("ruff")  # installed with requirements-dev.txt into the same environment


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]], ids=["check", "format"])
def test_ruff(args):
    assert RUFF.exists(), f"ruff is missing from {RUFF.parent}: install requirements-dev.txt"
    out = subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
