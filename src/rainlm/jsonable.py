"""JSON text of results that hold numpy values, tuples, sets and paths."""

from __future__ import annotations

import json
import re
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
    """``payload`` as JSON text (UTF-8, not ASCII-escaped), with every character a terminal
    could act on — DEL and C1 controls such as U+009B (a one-byte escape introducer),
    bidi controls such as U+202E, zero-width and other invisible format characters —
    written as a
    ``\\uXXXX`` escape: the same JSON, safe to print where prompts and answers from
    anyone are shown."""
    text = json.dumps(payload, default=_default, ensure_ascii=False, indent=indent)
    return _UNPRINTABLE.sub(_escape, text)


# inside JSON strings only (json.dumps escapes C0 controls; outside strings all is ASCII)
_UNPRINTABLE = re.compile("[\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
                          "\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]")


def _escape(match: re.Match[str]) -> str:
    """``\\uXXXX`` (a surrogate pair beyond the BMP) for one character."""
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples, sets and paths turned into plain JSON types."""
    return json.loads(to_json_text(value))
