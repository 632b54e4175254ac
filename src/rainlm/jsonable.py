"""JSON text of results that hold numpy values, tuples, sets and paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["json_ready", "to_json_text"]


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):  # numpy arrays
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json_text(payload: Any, indent: int | None = None) -> str:
    """``payload`` as JSON text (UTF-8, not ASCII-escaped)."""
    return json.dumps(payload, default=_default, ensure_ascii=False, indent=indent)


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples, sets and paths turned into plain JSON types."""
    return json.loads(to_json_text(value))
