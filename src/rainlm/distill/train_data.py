"""Read and check the training data of ``rain distill train``.

DATA is what ``rain distill export`` wrote:

- a JSONL file: ``dpo.jsonl`` (``prompt``, ``chosen``, ``rejected``: three strings, or chat
  messages) or ``sft.jsonl`` (``messages``, ending with the assistant's answer; rows with
  ``prompt`` and ``completion`` are read too);
- the export folder itself: its ``dpo.jsonl`` or ``sft.jsonl``, whichever the method needs;
- a ``datasets`` folder (``save_to_disk``, e.g. the export's ``hf/dpo``).

SFT also reads a DPO file (the chosen answers). Every row is checked before any model
loads; a bad one is a ConfigError naming the file, the line and the field. Rows come back
in the style the model is trained in (``as_rows``): chat messages when the model has a chat
template (a plain prompt becoming one user message, as RAIN answered through the
template), else plain ``Human: ...\\n\\nAssistant:`` transcripts, the way rainlm prompts
models without one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rainlm.errors import ConfigError

__all__ = ["Example", "METHODS", "TrainingData", "read_training_data", "resolve_data_path",
           "style_of"]

METHODS = ("dpo", "sft")
ROLES = ("system", "user", "assistant")
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Example:
    """One checked row: the prompt as messages, the chosen answer, the rejected one (DPO)."""

    prompt: tuple[tuple[str, str], ...]
    """(role, content) of each prompt message (a plain prompt is one user message)."""
    chosen: str
    """The answer to learn."""
    rejected: str | None
    """The answer to move away from (DPO); None for SFT."""


@dataclass(frozen=True)
class TrainingData:
    """The examples of one data file, checked, and where they came from."""

    path: Path
    """The file (or ``datasets`` folder) read."""
    method: str
    """``dpo`` or ``sft``: what the examples are for."""
    examples: tuple[Example, ...]
    """The rows, in file order."""
    sha256: str
    """Hash of the file's bytes (of every file, for a ``datasets`` folder)."""

    def as_rows(self, chat: bool) -> list[dict[str, Any]]:
        """TRL rows: preference (``prompt``, ``chosen``, ``rejected``) for DPO,
        prompt-completion for SFT (the loss is on the answer only). ``chat``: conversational
        rows for a model with a chat template, else plain transcripts."""
        from rainlm.backends.chat_template import plain_transcript

        rows = []
        for ex in self.examples:
            messages = [{"role": r, "content": c} for r, c in ex.prompt]
            answers = {"chosen": ex.chosen, "rejected": ex.rejected}
            if chat:
                row: dict[str, Any] = {"prompt": messages, **{
                    k: [{"role": "assistant", "content": v}] for k, v in answers.items()
                    if v is not None}}
            else:  # TRL adds the end-of-sequence token to standard answers
                row = {"prompt": plain_transcript(messages),
                       **{k: " " + v for k, v in answers.items() if v is not None}}
            if self.method == "sft":
                row = {"prompt": row["prompt"], "completion": row["chosen"]}
            rows.append(row)
        return rows


def _where(path: Path, line: int | None) -> str:
    return f"{path}, line {line}" if line is not None else str(path)


def _bad(path: Path, line: int | None, message: str) -> ConfigError:
    return ConfigError("data", f"{_where(path, line)}: {message}")


def _messages(value: Any, field: str, path: Path, line: int | None) -> Messages:
    """``value`` as chat messages (a string is one user message); ConfigError otherwise."""
    if isinstance(value, str):
        if not value.strip():
            raise _bad(path, line, f"field {field!r} is empty")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise _bad(path, line, f"field {field!r} must be a string or a non-empty list of "
                               f"chat messages ({{\"role\": ..., \"content\": ...}}); got "
                               f"{type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        if (not isinstance(m, Mapping) or m.get("role") not in ROLES
                or not isinstance(m.get("content"), str)):
            raise _bad(path, line, f"field {field!r}, message {i + 1}: needs a role "
                                   f"({', '.join(ROLES)}) and a string content; got {m!r:.80}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _answer(value: Any, field: str, path: Path, line: int | None) -> str:
    """An answer: a string, or one assistant message (TRL's conversational style)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
        if value[0].get("role") != "assistant":
            raise _bad(path, line, f"field {field!r}: the answer's role must be assistant, "
                                   f"got {value[0].get('role')!r}")
        value = value[0].get("content")
    if not isinstance(value, str):
        raise _bad(path, line, f"field {field!r} must be a string or one assistant message; "
                               f"got {type(value).__name__}")
    if not value.strip():
        raise _bad(path, line, f"field {field!r} is empty")
    return value


def _prompt(row: Mapping[str, Any], path: Path, line: int | None) -> Messages:
    prompt = _messages(row["prompt"], "prompt", path, line)
    if prompt[-1]["role"] == "assistant":
        raise _bad(path, line, "field 'prompt' ends with an assistant message; the last "
                               "message must be the user's")
    return prompt


def _example(row: Any, method: str, path: Path, line: int | None) -> Example:
    """One row checked for ``method``; ConfigError naming the field otherwise."""
    if not isinstance(row, Mapping):
        raise _bad(path, line, f"a row must be a JSON object; got {type(row).__name__}")
    if method == "sft" and "messages" in row:
        messages = _messages(row["messages"], "messages", path, line)
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise _bad(path, line, "field 'messages' must end with the assistant's answer, "
                                   "after the prompt's messages")
        chosen = _answer(messages[-1]["content"], "messages", path, line)
        return Example(tuple((m["role"], m["content"]) for m in messages[:-1]), chosen, None)
    answer_field = "completion" if method == "sft" and "completion" in row else "chosen"
    needed = ("prompt", answer_field) + (("rejected",) if method == "dpo" else ())
    for field in needed:
        if field not in row:
            hint = ""
            if method == "dpo" and "messages" in row:
                hint = ("; this is SFT data (sft.jsonl): pass dpo.jsonl, or train with "
                        "--method sft")
            elif method == "sft":
                hint = "; SFT rows need 'messages' (or 'prompt' and 'completion' or 'chosen')"
            raise _bad(path, line, f"field {field!r} is missing{hint}")
    prompt = _prompt(row, path, line)
    chosen = _answer(row[answer_field], answer_field, path, line)
    rejected = _answer(row["rejected"], "rejected", path, line) if method == "dpo" else None
    if rejected is not None and rejected == chosen:
        raise _bad(path, line, "fields 'chosen' and 'rejected' are the same answer")
    return Example(tuple((m["role"], m["content"]) for m in prompt), chosen, rejected)


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("data", f"cannot read {path}: {exc}") from None
    for n, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise _bad(path, n, f"not JSON ({exc.msg}, column {exc.colno})") from None
            except RecursionError:
                raise _bad(path, n, "a JSON value nested too deeply to read") from None
            yield n, row


def _hf_rows(folder: Path) -> Iterator[tuple[int | None, Any]]:
    try:
        from datasets import load_from_disk
    except ImportError:
        raise ConfigError("data", f"{folder} is a datasets folder, and reading it needs the "
                                  f"datasets package: pip install 'rainlm[distill]'; or pass "
                                  f"the JSONL file") from None
    try:
        dataset = load_from_disk(str(folder))
    except (OSError, ValueError) as exc:
        raise ConfigError("data", f"cannot read the datasets folder {folder}: {exc}") from None
    if not hasattr(dataset, "column_names") or isinstance(dataset.column_names, dict):
        raise ConfigError("data", f"{folder} holds several splits; pass one split's folder")
    for row in dataset:
        yield None, row


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file()


def resolve_data_path(data: str | Path, method: str) -> Path:
    """The file (or ``datasets`` folder) to read for ``method``: DATA itself, or inside an
    export folder ``METHOD.jsonl`` (then ``hf/METHOD``; SFT falls back to ``dpo.jsonl``)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise ConfigError("data", f"{path} does not exist; pass dpo.jsonl or sft.jsonl, or "
                                  f"the folder `rain distill export` wrote")
    if path.is_file() or _is_hf_folder(path):
        return path
    candidates = [path / f"{method}.jsonl", path / "hf" / method]
    if method == "sft":
        candidates.append(path / "dpo.jsonl")
    for c in candidates:
        if c.is_file() or (c.is_dir() and _is_hf_folder(c)):
            return c
    raise ConfigError("data", f"{path} is a folder without {method}.jsonl or hf/{method}; "
                              f"pass the file, or the folder `rain distill export` wrote")


def read_training_data(data: str | Path, method: str = "dpo") -> TrainingData:
    """Read and check DATA for ``method`` (see the module docstring); ConfigError naming
    the file, line and field of the first bad row, or the file when it holds none."""
    if method not in METHODS:
        raise ConfigError("method", f"must be one of {', '.join(METHODS)}; got {method!r}")
    path = resolve_data_path(data, method)
    rows = _hf_rows(path) if path.is_dir() else _jsonl_rows(path)
    examples = tuple(_example(row, method, path, line) for line, row in rows)
    if not examples:
        raise ConfigError("data", f"{path} holds no rows; export some pairs first "
                                  f"(rain distill export ... --out DIR)")
    return TrainingData(path=path, method=method, examples=examples, sha256=_digest(path))


def style_of(rows: Sequence[Mapping[str, Any]]) -> str:
    """``conversational`` or ``standard`` (TRL's words) for rows from ``as_rows``."""
    return "conversational" if rows and isinstance(rows[0]["prompt"], list) else "standard"
