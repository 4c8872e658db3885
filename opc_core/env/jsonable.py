"""Plain JSON values from whatever the library computes (numpy, torch, dataclasses, paths).

One function serves the metrics and the run store: NaN and infinities become ``None`` (strict JSON has no NaN), so a
stored record always parses in any JSON reader.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values: NaN/inf -> None, numpy/torch values -> numbers/lists, tuples -> lists."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):  # numpy arrays/scalars, torch tensors
        return to_jsonable(obj.tolist())
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON: {obj!r:.80}")
