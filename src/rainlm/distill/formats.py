"""Write pairs in the formats people train with.

- ``dpo``: ``dpo.jsonl``, TRL's preference format: ``prompt``, ``chosen``, ``rejected``.
  Conversational when a source was a chat (or ``chat=True``): ``prompt`` is the list of
  messages, ``chosen`` and ``rejected`` are ``[{"role": "assistant", "content": ...}]``;
  standard otherwise: three strings. One file has one style (the ``datasets`` JSON
  loader needs one type per column), so one chat source makes every row conversational,
  a plain prompt becoming one user message.
- ``sft``: ``sft.jsonl``, TRL's conversational language-modeling format: ``messages``,
  the prompt's messages and the chosen answer as the assistant's.
- ``hf``: ``hf/dpo`` and ``hf/sft``, the same rows as ``datasets.Dataset.save_to_disk``
  folders (``datasets.load_from_disk`` reads them; needs the ``datasets`` package).

Every row also carries ``margin``, ``judge``, ``kind`` and ``source`` columns (TRL's
trainers drop columns they do not use); ``export.json`` records what was exported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rainlm.distill.pairs import Pair
from rainlm.errors import ConfigError, RainError

__all__ = ["FORMATS", "datasets_available", "dpo_rows", "is_chat", "parse_formats",
           "sft_rows", "write_formats", "INSTALL_HINT"]

FORMATS = ("dpo", "sft", "hf")
INSTALL_HINT = "pip install 'rainlm[distill]' (or pip install datasets==5.2.0)"


def parse_formats(spec: str) -> tuple[str, ...]:
    """``"dpo,sft"`` -> ("dpo", "sft"); ConfigError naming ``format`` otherwise."""
    names = tuple(dict.fromkeys(s.strip().lower() for s in spec.split(",") if s.strip()))
    if not names:
        raise ConfigError("format", f"is empty; give some of {', '.join(FORMATS)}")
    for name in names:
        if name not in FORMATS:
            raise ConfigError("format", f"unknown format {name!r}; choose from "
                                        f"{', '.join(FORMATS)}")
    return names


def datasets_available() -> bool:
    """The ``datasets`` package can be imported."""
    return importlib.util.find_spec("datasets") is not None


def is_chat(pairs: Sequence[Pair], chat: bool | None = None) -> bool:
    """The style of the DPO rows: ``chat`` when given, else whether any pair's source was
    a chat or any prompt is more than one user message."""
    if chat is not None:
        return chat
    return any(p.chat or len(p.prompt) != 1 or p.prompt[0]["role"] != "user" for p in pairs)


def _meta(pair: Pair) -> dict[str, Any]:
    return {"margin": float(pair.margin or 0.0), "judge": str(pair.judge), "kind": pair.kind,
            "source": pair.source}


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def dpo_rows(pairs: Sequence[Pair], *, chat: bool | None = None) -> list[dict[str, Any]]:
    """TRL preference rows: conversational or standard (see ``is_chat``)."""
    conversational = is_chat(pairs, chat)
    rows = []
    for p in pairs:
        if conversational:
            row: dict[str, Any] = {"prompt": [dict(m) for m in p.prompt],
                                   "chosen": _assistant(p.chosen),
                                   "rejected": _assistant(p.rejected)}
        else:
            row = {"prompt": p.prompt[0]["content"], "chosen": p.chosen,
                   "rejected": p.rejected}
        rows.append({**row, **_meta(p)})
    return rows


def sft_rows(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    """TRL conversational rows: the prompt's messages, then the chosen answer (once per
    prompt and answer: one answer preferred to several others is one example)."""
    rows, seen = [], set()
    for p in pairs:
        messages = [*(dict(m) for m in p.prompt), *_assistant(p.chosen)]
        key = json.dumps(messages, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            rows.append({"messages": messages, **_meta(p)})
    return rows


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise RainError(f"cannot write {path}: {exc.strerror or exc}; choose another --out "
                        "folder") from None


def _jsonl(rows: Sequence[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _save_hf(folder: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    try:
        from datasets import Dataset
    except ImportError as exc:
        raise RainError(f"the hf format needs the datasets package ({exc}): "
                        f"{INSTALL_HINT}; or leave hf out of --format") from None
    from datasets.utils import (are_progress_bars_disabled, disable_progress_bars,
                                enable_progress_bars)

    quiet = are_progress_bars_disabled()
    with warnings.catch_warnings():  # datasets warns when an environment variable wins
        warnings.simplefilter("ignore")
        disable_progress_bars()  # a bar per 50 rows is noise on the terminal
    try:
        Dataset.from_list([dict(r) for r in rows]).save_to_disk(str(folder))
    except OSError as exc:
        raise RainError(f"cannot write {folder}: {exc.strerror or exc}; choose another "
                        "--out folder") from None
    finally:
        if not quiet:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                enable_progress_bars()


def write_formats(pairs: Sequence[Pair], out_dir: str | Path, formats: Sequence[str], *,
                  chat: bool | None = None, manifest: Mapping[str, Any] | None = None
                  ) -> list[Path]:
    """Write ``pairs`` to ``out_dir`` in ``formats`` (and ``export.json`` with
    ``manifest`` and the files' row counts); returns the paths written.

    Files already there are replaced. RainError when there is no pair to write (an empty
    file is no data set) or a file cannot be written.
    """
    formats = parse_formats(",".join(formats))
    if not pairs:
        raise RainError("no pair to write; nothing was exported")
    if "hf" in formats and not datasets_available():
        raise RainError(f"the hf format needs the datasets package: {INSTALL_HINT}; or "
                        "leave hf out of --format")
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RainError(f"cannot create the folder {out}: {exc.strerror or exc}; choose "
                        "another --out folder") from None
    rows = {"dpo": dpo_rows(pairs, chat=chat), "sft": sft_rows(pairs)}
    written: list[Path] = []
    for name in ("dpo", "sft"):
        if name in formats:
            _write_text(out / f"{name}.jsonl", _jsonl(rows[name]))
            written.append(out / f"{name}.jsonl")
    if "hf" in formats:
        for name in ("dpo", "sft"):
            _save_hf(out / "hf" / name, rows[name])
            written.append(out / "hf" / name)
    info = {**(manifest or {}), "formats": list(formats),
            "style": "conversational" if is_chat(pairs, chat) else "standard",
            "rows": {name: len(rows[name]) for name in ("dpo", "sft")},
            "files": [str(p.relative_to(out)) for p in written]}
    _write_text(out / "export.json", json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    written.append(out / "export.json")
    return written
