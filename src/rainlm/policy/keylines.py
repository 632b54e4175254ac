"""Where each key of a TOML text is written: its line, so a policy file's errors can
name it ("policy.toml line 7, rules.letter_max: ...").

``tomllib`` gives values, not lines; this reads the text line by line, following
``[table]`` headers, dotted keys and the keys of one-line inline tables, and skipping
multi-line strings. It only has to be right for files ``tomllib`` accepted.
"""

from __future__ import annotations

import re

__all__ = ["KeyLines"]

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_PART}(?:\s*\.\s*{_PART})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_DOTTED})\s*=")
_PARTS = re.compile(_PART)


def _path(dotted: str) -> list[str]:
    """``a."b c".d`` -> ["a", "b c", "d"]."""
    return [p[1:-1] if p[0] in "\"'" else p for p in _PARTS.findall(dotted)]


class KeyLines:
    """``KeyLines(text).line_of("rules.letter_max")`` -> 7 (1-based), or the line of the
    nearest enclosing table written in the file, or None."""

    def __init__(self, text: str):
        self.lines: dict[str, int] = {}
        table: list[str] = []
        in_string = ""  # the quotes of the multi-line string we are inside, if any
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = ""
                continue
            header = _HEADER.match(line)
            if header:
                table = _path(header.group(1))
                self._note(table, number)
                continue
            key = _KEY.match(line)
            if key is None:
                continue
            path = table + _path(key.group(1))
            self._note(path, number)
            rest = line[key.end():]
            if rest.lstrip().startswith("{"):
                for inner in _INLINE_KEY.finditer(rest):
                    self._note(path + _path(inner.group(1)), number)
            for quotes in ('"""', "'''"):
                if rest.count(quotes) % 2 == 1:
                    in_string = quotes

    def _note(self, path: list[str], number: int) -> None:
        for i in range(1, len(path) + 1):  # a dotted key also writes its parents
            self.lines.setdefault(".".join(path[:i]), number)

    def line_of(self, key: str) -> int | None:
        """The line ``key`` (dotted) is written on, else its nearest written parent's."""
        parts = key.split(".")
        while parts:
            found = self.lines.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return None
