import pytest

from opc_core.registry import Registry


def test_registry_contract():
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)

    @reg.register("b")
    def _b():
        return 2

    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    assert reg.get("b")() == 2
    with pytest.raises(KeyError, match="valid names: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 3)
