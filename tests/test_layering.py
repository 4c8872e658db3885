"""The library's layering: it never imports streamlit, and its imports only point down the flow of data."""

import ast
import subprocess
import sys
from pathlib import Path

# Each package may import its own tier and the tiers above it in this list, never one below (see docs/architecture.md).
TIERS = [
    {"(root)", "registry", "config", "env"},
    {"data"},
    {"models"},
    {"train"},
    {"methods"},
    {"metrics"},
    {"attacks", "embedding"},
    {"runs"},
    {"workflows"},
    {"jobs"},
    {"report"},
    {"cli", "__main__"},
]
PACKAGE = Path(__file__).resolve().parent.parent / "opc_core"


def _tier(name: str) -> int:
    return next(i for i, group in enumerate(TIERS) if name in group)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def imports_by_part() -> dict[str, set[tuple[str, str]]]:
    """{package: {(imported package, importing file)}}, counting imports inside functions too (lazy ones)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        me = _part(".".join(p for p in rel.parts if p != "__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "opc_core":
                names = [node.module] if node.module != "opc_core" else [f"opc_core.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "opc_core"]
            for name in names:
                target = _part(name) if name != "opc_core.__version__" else "(root)"
                out.setdefault(me, set()).add((target, str(rel)))
    return out


def test_every_package_has_a_tier():
    parts = {_part(".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    assert parts - {"__init__"} <= set().union(*TIERS)


def test_imports_point_down_the_flow():
    upward = sorted(
        f"{where} imports opc_core.{target}"
        for me, targets in imports_by_part().items()
        for target, where in targets
        if _tier(target) > _tier(me)
    )
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The layering check is not vacuous: a module of the data tier importing the run store is reported."""
    fake = tmp_path / "opc_core"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "x.py").write_text("def f():\n    from opc_core.runs.store import RunStore\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert imports_by_part() == {"data": {("runs", "opc_core/data/x")}}


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
