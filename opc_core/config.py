"""Typed option bundles: frozen dataclasses whose fields carry their help text and valid range.

Every configurable part of the library (training, each unlearning method, each attack, the embedding) declares its
options as a frozen dataclass built from :func:`hp` fields. This module holds the generic machinery once: the
dashboard's widgets come from :func:`describe_fields`; command lines, presets and stored settings become an instance
through :func:`build_config`, which coerces strings to each field's type and refuses unknown keys, non-finite numbers
and values out of range with an error that names the key. It is the lowest layer: it imports nothing of the library.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

C = TypeVar("C")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def hp(default: Any, help: str, lo: float | None = None, hi: float | None = None, choices: tuple | None = None):
    """A config field with a default and the metadata the dashboard turns into a widget (help, min, max, choices)."""
    meta: dict[str, Any] = {"help": help}
    if lo is not None:
        meta["min"] = lo
    if hi is not None:
        meta["max"] = hi
    if choices is not None:
        meta["choices"] = choices
    return dataclasses.field(default=default, metadata=meta)


def _type_name(f: dataclasses.Field) -> str:
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return t.replace("typing.", "")


def describe_fields(cls: type) -> list[dict[str, Any]]:
    """Each field's name, type, default and metadata (help, min, max, choices), in declaration order."""
    return [
        {"name": f.name, "type": _type_name(f), "default": f.default, **dict(f.metadata)}
        for f in dataclasses.fields(cls)
    ]


def parse_kv(items: Iterable[str]) -> dict[str, str]:
    """``["lr=0.1", "layer=features"]`` -> ``{"lr": "0.1", "layer": "features"}`` (keys and values stripped).

    A later item overrides an earlier one with the same key. An item without ``=`` or with an empty key raises
    ValueError naming it.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """``value`` as the field's type (bool, int, float or str); strings are parsed, a wrong type raises."""
    kind, key = _type_name(f), f.name
    if kind == "bool":
        if isinstance(value, bool):
            return value
        low = value.strip().lower() if isinstance(value, str) else None
        if low not in _TRUE + _FALSE:
            raise ValueError(f"{key}: expected true/false, got {value!r}")
        return low in _TRUE
    if kind in ("int", "float"):
        number = _number(key, value, kind)
        if not math.isfinite(number):
            raise ValueError(f"{key}: expected a finite number, got {value!r}")
        if kind == "float":
            return float(number)
        if float(number).is_integer():
            return int(number)
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if kind == "str" and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {value!r}")
    return value


def _number(key: str, value: Any, kind: str) -> int | float:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
    raise ValueError(f"{key}: expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}")


def validate_config(cfg: Any) -> None:
    """Check every field against its type's finiteness and its metadata's min / max / choices.

    Raises:
        ValueError: naming the field and the offending value.
    """
    for f in dataclasses.fields(cfg):
        v, meta = getattr(cfg, f.name), f.metadata
        if "choices" in meta and v not in meta["choices"]:
            raise ValueError(f"{f.name} must be one of {list(meta['choices'])}, got {v!r}")
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            if not math.isfinite(v):
                raise ValueError(f"{f.name}: expected a finite number, got {v!r}")
            if "min" in meta and v < meta["min"] or "max" in meta and v > meta["max"]:
                raise ValueError(f"{f.name} must be within [{meta.get('min')}, {meta.get('max')}], got {v}")


def build_config(
    cls: type[C],
    base: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | Iterable[str] = (),
    *,
    owner: str = "",
) -> C:
    """An instance of the frozen dataclass ``cls``: its defaults, then ``base``, then ``overrides``.

    Args:
        cls: the config dataclass.
        base: values over the defaults (e.g. a dataset's tuned preset).
        overrides: a mapping, or ``key=value`` strings as given on a command line; strings are coerced to each
            field's type.
        owner: what the config belongs to, for error messages (e.g. "method 'opc'").

    Raises:
        ValueError: an unknown key (the message lists the valid ones), a value of the wrong type, a non-finite number,
            or a value outside the field's range or choices; each names the key.
    """
    values = dict(base or {})
    values.update(overrides if isinstance(overrides, Mapping) else parse_kv(overrides))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f" for {owner}" if owner else f" for {cls.__qualname__}"
        raise ValueError(f"unknown setting(s) {unknown}{where}; valid: {sorted(fields)}")
    cfg = cls(**{k: _coerce(fields[k], v) for k, v in values.items()})
    validate_config(cfg)
    return cfg


def parse_variant(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"opc:layer=features:p=2"`` -> (label ``"opc[layer=features,p=2]"``, name ``"opc"``, its overrides).

    A plain name is its own label with no overrides. The overrides are strings, for :func:`build_config`.
    """
    name, *items = (part.strip() for part in spec.split(":"))
    if not name:
        raise ValueError(f"variant {spec!r}: a name must come first, e.g. opc:layer=features")
    try:
        overrides = parse_kv(items)
    except ValueError:
        raise ValueError(f"variant {spec!r}: settings must be key=value, separated by ':'") from None
    label = f"{name}[{','.join(items)}]" if items else name
    return label, name, overrides
