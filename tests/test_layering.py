"""The library never imports streamlit: every module of opc_core imports with streamlit blocked."""

import subprocess
import sys


def test_opc_core_imports_without_streamlit():
    code = r"""
import importlib, pkgutil, sys
sys.modules['streamlit'] = None  # any 'import streamlit' now raises ImportError
import opc_core
names = [m.name for m in pkgutil.walk_packages(opc_core.__path__, 'opc_core.') if not m.name.endswith('__main__')]
for name in names:
    importlib.import_module(name)
print(len(names), 'modules')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[0]) >= 10
