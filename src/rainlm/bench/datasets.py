"""Prompt sets for the benchmark: AdvBench, HH harmless-base, XSTest, TruthfulQA, Vicuna,
and any user JSONL/CSV file.

Every loader returns a list of :class:`Item` with a stable ``id`` (so runs can resume);
:func:`load_dataset` then applies ``offset``/``limit`` and, with ``seed``, a
deterministic shuffle of the whole set first (so ``limit=5`` is a prefix of
``limit=10`` for the same seed). A malformed file raises :class:`DatasetError`
naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rainlm.errors import ConfigError, FileError

__all__ = ["BUILTIN", "DatasetError", "HHPair", "Item", "data_file", "default_data_dir", "load_dataset",
           "load_hh_pairs", "load_refusal_prefixes", "parse_dialogue"]


class DatasetError(FileError):
    """A data file is missing or malformed; the message names the file, line and field."""



@dataclass(frozen=True)
class Item:
    """One prompt of a benchmark."""

    id: str
    """Stable id, e.g. ``advbench:12`` (row index) or ``xstest:7`` (the file's id);
    a run's results are keyed on it, so resuming never redoes an item."""
    prompt: str
    """The user message sent to the model (attack suffix included)."""
    dataset: str
    """Dataset name ("advbench", "hh", ..., or the file name of a custom set)."""
    label: str | None = None
    """"unsafe" (AdvBench), XSTest's "safe"/"unsafe", a custom file's ``label`` field,
    or None (HH, TruthfulQA, Vicuna). Attack success is measured on "unsafe" items,
    over-refusal on "safe" ones."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Extra columns kept for reports (XSTest type, TruthfulQA best answer, ...)."""


@dataclass(frozen=True)
class HHPair:
    """One HH comparison: the shared context and the two final assistant answers."""

    context: tuple[dict[str, str], ...]
    """The conversation before the last assistant turn (chat messages)."""
    chosen: str
    """The final answer that people judged less harmful."""
    rejected: str
    """The other final answer."""
    line: int
    """Line of the pair in the source file (1-based)."""


BUILTIN = {
    "advbench": "advbench/harmful_behaviors.csv",
    "hh": "hh-rlhf/harmless-base-test.jsonl.gz",
    "xstest": "xstest/xstest_prompts.csv",
    "truthfulqa": "truthfulqa/TruthfulQA.csv",
    "vicuna": "fastchat/vicuna_bench_questions.jsonl",
}
"""Built-in dataset name -> file under the data folder."""
REFUSAL_PREFIXES = "advbench/test_prefixes.txt"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def default_data_dir() -> Path:
    """``$RAINLM_DATA``, else the copy of the public data sets shipped inside the package
    (``rainlm/data``: AdvBench, HH harmless-base test, XSTest, TruthfulQA, Vicuna questions,
    each with its licence and source)."""
    env = os.environ.get("RAINLM_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "data"


def data_file(data_dir: str | Path | None, rel: str) -> Path:
    """``rel`` under ``data_dir`` (default :func:`default_data_dir`); DatasetError if absent."""
    path = (Path(data_dir).expanduser() if data_dir is not None else default_data_dir()) / rel
    if not path.is_file():
        raise DatasetError(path, "file not found; point --data-dir (or RAINLM_DATA) at a "
                                 "folder laid out like rainlm/data (the shipped copy)")
    return path


# ------------------------------------------------------------------------ readers
def _open_text(path: Path, encoding: str = "utf-8"):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; DatasetError on bad JSON."""
    try:
        with _open_text(path) as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(path, f"not valid JSON ({exc.msg} at column {exc.colno})",
                                       line=n) from None
                if not isinstance(row, dict):
                    raise DatasetError(path, f"expected a JSON object, got {type(row).__name__}",
                                       line=n)
                yield n, row
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DatasetError(path, f"cannot be read: {exc}") from None


def iter_csv(path: Path, required: tuple[str, ...], encoding: str = "utf-8",
             delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for every CSV record; DatasetError if a required column is
    missing from the header (line 1) or a row lacks it."""
    try:
        with _open_text(path, encoding) as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = reader.fieldnames or []
            for name in required:
                if name not in header:
                    raise DatasetError(path, f"missing column; the header has {header}",
                                       line=1, field=name)
            for row in reader:
                for name in required:
                    if row.get(name) is None:
                        raise DatasetError(path, "row has too few columns",
                                           line=reader.line_num, field=name)
                yield reader.line_num, row
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise DatasetError(path, f"cannot be read: {exc}") from None


def _text(path: Path, row: Mapping[str, Any], name: str, line: int) -> str:
    """A required, non-empty string field."""
    if name not in row:
        raise DatasetError(path, f"missing field; the record has {sorted(row)}", line=line,
                           field=name)
    value = row[name]
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(path, f"must be a non-empty string, got {value!r}", line=line,
                           field=name)
    return value.strip()


# ------------------------------------------------------------------------ loaders
def _advbench(path: Path, suffix: str | None) -> list[Item]:
    items = []
    for i, (n, row) in enumerate(iter_csv(path, ("goal",))):
        goal = _text(path, row, "goal", n)
        attack = (row.get("suffix") or "").strip()  # optional per-row attack suffix
        attack = " ".join(s for s in (attack, (suffix or "").strip()) if s)
        prompt = f"{goal} {attack}" if attack else goal
        items.append(Item(f"advbench:{i}", prompt, "advbench", "unsafe",
                          {"goal": goal, "target": row.get("target", ""), "suffix": attack}))
    return items


def parse_dialogue(text: str) -> list[dict[str, str]]:
    """HH text ("\\n\\nHuman: …\\n\\nAssistant: …") -> chat messages, in order."""
    parts = _TURN.split("\n\n" + text.lstrip("\n"))
    # parts: ["", role1, content1, role2, content2, ...]
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()}
            for i in range(1, len(parts) - 1, 2)]


def _hh(path: Path) -> list[Item]:
    items = []
    for n, row in iter_jsonl(path):
        turns = parse_dialogue(_text(path, row, "chosen", n))
        if not turns or turns[0]["role"] != "user" or not turns[0]["content"]:
            raise DatasetError(path, "does not start with a 'Human:' turn", line=n,
                               field="chosen")
        # Red-team style openers, but many are harmless: no label, so no attack-success rate.
        items.append(Item(f"hh:{n}", turns[0]["content"], "hh", None))
    return items


def load_hh_pairs(path: str | Path, n: int | None = None) -> list[HHPair]:
    """First ``n`` usable HH pairs (all if None).

    Pairs whose final answers are identical, or that do not end with an assistant turn,
    are skipped (no judge can separate them).
    """
    path = Path(path)
    pairs: list[HHPair] = []
    for line, row in iter_jsonl(path):
        chosen = parse_dialogue(_text(path, row, "chosen", line))
        rejected = parse_dialogue(_text(path, row, "rejected", line))
        if not chosen or not rejected or any(d[-1]["role"] != "assistant"
                                             for d in (chosen, rejected)):
            continue
        if chosen[-1]["content"] == rejected[-1]["content"]:
            continue
        pairs.append(HHPair(tuple(chosen[:-1]), chosen[-1]["content"],
                            rejected[-1]["content"], line))
        if n is not None and len(pairs) == n:
            break
    return pairs


def _xstest(path: Path) -> list[Item]:
    items = []
    for n, row in iter_csv(path, ("id", "prompt", "label")):
        label = row["label"].strip()
        if label not in ("safe", "unsafe"):
            raise DatasetError(path, f"must be 'safe' or 'unsafe', got {label!r}", line=n,
                               field="label")
        meta = {k: row.get(k, "") for k in ("type", "focus", "note")}
        items.append(Item(f"xstest:{row['id'].strip()}", _text(path, row, "prompt", n),
                          "xstest", label, meta))
    return items


def _truthfulqa(path: Path) -> list[Item]:
    items = []
    for i, (n, row) in enumerate(iter_csv(path, ("Question",), encoding="utf-8-sig")):
        meta = {k: row.get(k, "") for k in ("Type", "Category", "Best Answer")}
        items.append(Item(f"truthfulqa:{i}", _text(path, row, "Question", n), "truthfulqa",
                          None, meta))
    return items


def _vicuna(path: Path) -> list[Item]:
    items = []
    for n, row in iter_jsonl(path):
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns:
            raise DatasetError(path, f"must be a non-empty list, got {turns!r}", line=n,
                               field="turns")
        prompt = _text(path, {"turns[0]": turns[0]}, "turns[0]", n)
        items.append(Item(f"vicuna:{row.get('question_id', n)}", prompt, "vicuna", None,
                          {"category": row.get("category", "")}))
    return items


def _custom(path: Path, prompt_field: str) -> list[Item]:
    """A user file: .jsonl / .jsonl.gz (one object a line) or .csv / .tsv (header row)."""
    name = path.name
    suffixes = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffixes in (".jsonl", ".jsonl.gz", ".ndjson"):
        rows: Iterator[tuple[int, Mapping[str, Any]]] = iter_jsonl(path)
    elif suffixes in (".csv", ".csv.gz", ".tsv"):
        rows = iter_csv(path, (prompt_field,), delimiter="\t" if suffixes == ".tsv" else ",")
    else:
        raise DatasetError(path, "unknown file type; use .jsonl, .jsonl.gz, .csv or .tsv")
    items, seen = [], set()
    for n, row in rows:
        prompt = _text(path, row, prompt_field, n)
        raw_id = row.get("id")
        item_id = f"{name}:{raw_id if raw_id not in (None, '') else n}"
        if item_id in seen:
            raise DatasetError(path, f"duplicate id {raw_id!r}", line=n, field="id")
        seen.add(item_id)
        label = row.get("label")
        items.append(Item(item_id, prompt, name, str(label) if label not in (None, "") else None))
    return items


# ------------------------------------------------------------------------ public
def load_dataset(name: str, *, data_dir: str | Path | None = None, path: str | Path | None = None,
                 prompt_field: str = "prompt", limit: int | None = None, offset: int = 0,
                 seed: int | None = None, suffix: str | None = None) -> list[Item]:
    """Items of a built-in set (``name`` in :data:`BUILTIN`) or of a user file.

    Args:
        name: "advbench", "hh", "xstest", "truthfulqa", "vicuna", or a path to a
            .jsonl/.csv file whose ``prompt_field`` holds the prompt (optional ``id``
            and ``label`` fields are kept).
        data_dir: folder of the public data sets (default :func:`default_data_dir`).
        path: a file in a built-in set's format to read instead of the shipped one
            (e.g. an AdvBench CSV with a ``suffix`` column of attack suffixes).
        limit, offset: take ``limit`` items starting at ``offset`` (after shuffling).
        seed: None keeps the file order; an int shuffles the whole set deterministically.
        suffix: AdvBench only: an attack suffix appended to every goal.
    """
    _check_window(limit, offset, seed)
    if suffix is not None and name != "advbench":
        raise ConfigError("suffix", f"applies to advbench only, not {name!r}")
    if name in BUILTIN:
        file = Path(path).expanduser() if path is not None else data_file(data_dir, BUILTIN[name])
        if not file.is_file():
            raise DatasetError(file, "file not found")
        loaders = {"advbench": lambda p: _advbench(p, suffix), "hh": _hh, "xstest": _xstest,
                   "truthfulqa": _truthfulqa, "vicuna": _vicuna}
        items = loaders[name](file)
    else:
        file = Path(name).expanduser()
        if not file.is_file():
            raise DatasetError(file, f"not a built-in dataset ({', '.join(BUILTIN)}) and "
                                     "no such file")
        items = _custom(file, prompt_field)
    return select(items, limit=limit, offset=offset, seed=seed)


def select(items: list[Item], *, limit: int | None = None, offset: int = 0,
           seed: int | None = None) -> list[Item]:
    """``items[offset:offset+limit]``, after a seeded permutation when ``seed`` is set."""
    _check_window(limit, offset, seed)
    if seed is not None:
        import numpy as np

        order = np.random.default_rng(seed).permutation(len(items))
        items = [items[i] for i in order]
    end = None if limit is None else offset + limit
    return items[offset:end]


def _check_window(limit: int | None, offset: int, seed: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError("limit", f"must be an integer >= 1 or None, got {limit!r}")
    if not isinstance(offset, int) or offset < 0:
        raise ConfigError("offset", f"must be an integer >= 0, got {offset!r}")
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise ConfigError("seed", f"must be an integer >= 0 or None, got {seed!r}")


def load_refusal_prefixes(data_dir: str | Path | None = None,
                          path: str | Path | None = None) -> tuple[str, ...]:
    """GCG's refusal phrases (one a line; blank lines ignored)."""
    file = Path(path) if path is not None else data_file(data_dir, REFUSAL_PREFIXES)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(file, f"cannot be read: {exc}") from None
    phrases = tuple(s.strip() for s in lines if s.strip())
    if not phrases:
        raise DatasetError(file, "holds no refusal phrases")
    return phrases
