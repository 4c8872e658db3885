"""The typed-config helpers: field metadata, KEY=VALUE parsing, coercion, and every refusal naming its key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from opc_core.config import build_config, describe_fields, hp, parse_kv, parse_variant, validate_config


@dataclass(frozen=True)
class Toy:
    lr: float = hp(0.1, "Learning rate", 1e-6, 10.0)
    steps: int = hp(3, "Steps", 0, 100)
    flag: bool = hp(False, "A switch")
    mode: str = hp("a", "A choice", choices=("a", "b"))
    p: int = hp(1, "An integer choice", choices=(1, 2))


def test_hp_and_describe_fields():
    rows = describe_fields(Toy)
    assert [r["name"] for r in rows] == ["lr", "steps", "flag", "mode", "p"]
    assert rows[0] == {"name": "lr", "type": "float", "default": 0.1, "help": "Learning rate", "min": 1e-6, "max": 10.0}
    assert rows[3]["choices"] == ("a", "b") and "min" not in rows[3]
    assert dataclasses.fields(Toy)[2].metadata == {"help": "A switch"}


def test_parse_kv():
    assert parse_kv([" lr = 0.5", "mode=b", "lr=0.25", "note=x=y"]) == {"lr": "0.25", "mode": "b", "note": "x=y"}
    assert parse_kv([]) == {}
    for bad in ("lr", "=3", " =3"):
        with pytest.raises(ValueError, match="key=value") as err:
            parse_kv(["mode=a", bad])
        assert repr(bad) in str(err.value)


def test_build_config_coerces_strings_and_layers_base_under_overrides():
    cfg = build_config(Toy, {"lr": 0.5, "steps": 7}, ["lr=2e-3", "flag=yes", "mode=b", "p=2"])
    assert (cfg.lr, cfg.steps, cfg.flag, cfg.mode, cfg.p) == (0.002, 7, True, "b", 2)
    assert type(cfg.lr) is float and type(cfg.steps) is int and type(cfg.p) is int
    assert build_config(Toy) == Toy()
    assert build_config(Toy, overrides={"lr": 1, "steps": 4.0, "flag": "0"}) == Toy(lr=1.0, steps=4, flag=False)
    assert type(build_config(Toy, overrides={"lr": 1}).lr) is float


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lr=abc"], "lr: expected a number, got 'abc'"),
        (["steps=2.5"], "steps: expected an integer, got '2.5'"),
        (["steps=x"], "steps: expected an integer, got 'x'"),
        (["flag=maybe"], "flag: expected true/false, got 'maybe'"),
        (["lr=nan"], "lr: expected a finite number, got 'nan'"),
        (["lr=inf"], "lr: expected a finite number, got 'inf'"),
        ({"lr": float("-inf")}, "lr: expected a finite number"),
        (["lr=20"], r"lr must be within \[1e-06, 10.0\], got 20.0"),
        (["steps=-1"], r"steps must be within \[0, 100\], got -1"),
        (["mode=c"], r"mode must be one of \['a', 'b'\], got 'c'"),
        (["p=3"], r"p must be one of \[1, 2\], got 3"),
        ({"mode": 3}, "mode: expected a string, got 3"),
        ({"flag": 1}, "flag: expected true/false, got 1"),
    ],
)
def test_build_config_refusals_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_config(Toy, overrides=overrides)


def test_build_config_refuses_unknown_keys_listing_valid_ones():
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['lambda'\] for method 'x'; valid: \['flag', 'lr'"):
        build_config(Toy, {"lambda": 1}, owner="method 'x'")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['zz'\] for Toy"):
        build_config(Toy, overrides=["zz=1"])


def test_validate_config_catches_directly_built_values():
    validate_config(Toy())
    with pytest.raises(ValueError, match="lr: expected a finite number"):
        validate_config(Toy(lr=float("nan")))
    with pytest.raises(ValueError, match="steps must be within"):
        validate_config(Toy(steps=1000))


def test_parse_variant():
    assert parse_variant("opc") == ("opc", "opc", {})
    assert parse_variant(" opc : layer=features : p=2") == (
        "opc[layer=features,p=2]",
        "opc",
        {"layer": "features", "p": "2"},
    )
    with pytest.raises(ValueError, match="key=value, separated by ':'"):
        parse_variant("opc:layer")
    with pytest.raises(ValueError, match="a name must come first"):
        parse_variant(":p=2")
