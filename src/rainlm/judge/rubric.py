"""Self-evaluation rubrics as data (RAIN_SPEC §4): TOML files, validated on load.

A rubric says what the judge is asked (``instruction``), the two options it picks
between (``good_option`` / ``bad_option``), the option letters (``labels``), whether
the question is asked in both option orders by default (``orders``), and a few worked
examples shown before the judged dialogue. Built-in rubrics live in
``rainlm/judge/rubrics/*.toml``; a user passes a path to their own file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from rainlm.errors import JudgeError

__all__ = ["Example", "Rubric", "list_rubrics", "load_rubric", "rubric_from_dict"]

_REQUIRED_TEXT = ("name", "instruction", "good_option", "bad_option")
_KNOWN = set(_REQUIRED_TEXT) | {"description", "labels", "orders", "examples"}
_EXAMPLE_KEYS = {"user", "assistant", "verdict"}
ORDERS = ("both", "single")
VERDICTS = ("good", "bad")


@dataclass(frozen=True)
class Example:
    """One worked example shown to the judge before the real dialogue."""

    user: str
    assistant: str
    verdict: str
    """"good" (the good option is right) or "bad"."""


@dataclass(frozen=True)
class Rubric:
    """A validated self-evaluation rubric."""

    name: str
    instruction: str
    good_option: str
    """Text of the option that scores +1 (e.g. "Assistant's response is harmless.")."""
    bad_option: str
    """Text of the option that scores -1."""
    labels: tuple[str, str] = ("A", "B")
    """Option letters; each must be one token after "The answer is: (" for the model."""
    orders: str = "both"
    """Default: ask in "both" option orders (cancels letter bias) or a "single" one."""
    examples: tuple[Example, ...] = ()
    description: str = ""
    source: str = "<dict>"
    """Where the rubric came from (a file path, or "builtin:<name>")."""


def list_rubrics() -> list[str]:
    """Names of the built-in rubrics, sorted."""
    folder = resources.files("rainlm.judge") / "rubrics"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_rubric(name_or_path: str | Path | Rubric) -> Rubric:
    """A built-in rubric by name (``"harmless"``) or a user rubric from a TOML path.

    A ``Rubric`` passes through unchanged. Raises ``JudgeError`` naming the file and
    field when the file is missing or malformed.
    """
    if isinstance(name_or_path, Rubric):
        return name_or_path
    text = str(name_or_path)
    if text in list_rubrics() and not Path(text).exists():
        res = resources.files("rainlm.judge") / "rubrics" / f"{text}.toml"
        return _parse(res.read_bytes(), f"builtin:{text}")
    path = Path(text).expanduser()
    if not path.is_file():
        raise JudgeError(
            f"rubric {text!r} is neither a built-in rubric ({', '.join(list_rubrics())}) "
            "nor a TOML file that exists; pass one of those names or a path to a .toml file"
        )
    return _parse(path.read_bytes(), str(path))


def _parse(raw: bytes, source: str) -> Rubric:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JudgeError(f"rubric {source}: not valid TOML ({exc})") from None
    return rubric_from_dict(data, source=source)


def rubric_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Rubric:
    """Validate a parsed rubric table; every error names ``source`` and the field."""
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        _fail(source, unknown[0], f"unknown field; allowed fields are {sorted(_KNOWN)}")
    for key in _REQUIRED_TEXT:
        _text(data, key, source)
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(source, "description", "must be a string")
    orders = data.get("orders", "both")
    if orders not in ORDERS:
        _fail(source, "orders", f"must be one of {list(ORDERS)}, got {orders!r}")
    if data["good_option"].strip() == data["bad_option"].strip():
        _fail(source, "bad_option", "must differ from good_option")
    return Rubric(
        name=data["name"].strip(),
        instruction=data["instruction"].strip(),
        good_option=data["good_option"].strip(),
        bad_option=data["bad_option"].strip(),
        labels=_labels(data.get("labels", ["A", "B"]), source),
        orders=orders,
        examples=_examples(data.get("examples", []), source),
        description=description.strip(),
        source=source,
    )


def _labels(value: Any, source: str) -> tuple[str, str]:
    def ok(v: Any) -> bool:
        return isinstance(v, str) and bool(v) and not any(c.isspace() for c in v)

    if not isinstance(value, list) or len(value) != 2 or not all(ok(v) for v in value):
        _fail(source, "labels",
              f"must be a list of two non-empty strings without spaces, got {value!r}")
    if value[0] == value[1]:
        _fail(source, "labels", f"the two labels must differ, got {value!r}")
    return (value[0], value[1])


def _examples(value: Any, source: str) -> tuple[Example, ...]:
    if not isinstance(value, list):
        _fail(source, "examples", "must be an array of tables ([[examples]])")
    out = []
    for i, ex in enumerate(value):
        field = f"examples[{i}]"
        if not isinstance(ex, dict):
            _fail(source, field, "must be a table with user, assistant and verdict")
        extra = sorted(set(ex) - _EXAMPLE_KEYS)
        if extra:
            _fail(source, f"{field}.{extra[0]}", f"unknown field; allowed: {sorted(_EXAMPLE_KEYS)}")
        for key in ("user", "assistant"):
            _text(ex, key, source, prefix=f"{field}.")
        if ex.get("verdict") not in VERDICTS:
            _fail(source, f"{field}.verdict",
                  f"must be one of {list(VERDICTS)}, got {ex.get('verdict')!r}")
        out.append(Example(ex["user"].strip(), ex["assistant"].strip(), ex["verdict"]))
    return tuple(out)


def _text(table: dict[str, Any], key: str, source: str, prefix: str = "") -> None:
    if key not in table:
        _fail(source, prefix + key, "is missing")
    if not isinstance(table[key], str) or not table[key].strip():
        _fail(source, prefix + key, f"must be a non-empty string, got {table[key]!r}")


def _fail(source: str, field: str, message: str) -> NoReturn:
    raise JudgeError(f"rubric {source}: field {field!r} {message}")
