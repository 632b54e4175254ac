"""Answers from the audit database (``TraceStore``): the server's requests and the
answers ``rain generate`` and ``rain chat`` logged, with reviewers' decisions.

The database is an SQLite file or a PostgreSQL store (a ``postgresql://`` URL). Either is
checked read-only for rainlm's ``traces`` table first, so a foreign database is refused
and never given rainlm's tables. A URL is named everywhere (answers' sources, messages)
without its password (``rainlm.trace.location.describe``).

- A record with a search config is RAIN's answer; one without (the server's method
  "greedy") is greedy's. Their value is the final answer's self-evaluation
  (``scores["value"]``, else the policy's score) and their judge ``self-eval:RUBRIC``;
  RAIN and greedy are compared on the same prompt, model and judge.
- The prompt is the request's ``messages`` (a chat) or its ``prompt`` string, with the
  CLI's ``--system`` message in front when one was given.
- When the policy replaced the answer by the refusal message, the answer read is the
  model's own (``PolicyDecision.original_text``: the one its score is about) and
  ``replaced_by`` holds the refusal that was sent.
- Failed requests are read with their error, and requests still running ("started") or
  cut by a dying server ("interrupted") as failed (pairing drops them); records without
  a readable prompt are skipped and counted.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rainlm.distill.answers import (Answer, SourceError, chat_messages, is_budget_limited,
                                    prompt_key)
from rainlm.trace.location import describe, is_postgres_url, redact_text
from rainlm.trace.records import INTERRUPTED, STARTED

__all__ = ["read_audit_db", "looks_like_sqlite"]

PAGE = 500
SQLITE_MAGIC = b"SQLite format 3\x00"


def looks_like_sqlite(path: str | Path) -> bool:
    """The file starts with SQLite's header."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _check_audit_db(path: Path) -> None:
    """SourceError unless ``path`` is an SQLite file with rainlm's ``traces`` table (checked
    read-only, so a foreign database is never given rainlm's tables)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                 "AND name = 'traces'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise SourceError(path, f"cannot read this SQLite file ({exc})") from None
    if found is None:
        raise SourceError(path, "an SQLite file without a 'traces' table: not an audit "
                                "database of rainlm; pass the file `rain serve`, `rain "
                                "generate` and `rain chat` log to (see `rain trace list "
                                "--help`)")


def _check_postgres_store(url: str) -> None:
    """SourceError unless the database at ``url`` has rainlm's ``traces`` table (checked
    in a read-only transaction, so a foreign database is never given rainlm's tables)."""
    from rainlm.errors import RainError
    from rainlm.trace.postgres_db import NOT_A_STORE, has_store_tables

    try:
        found = has_store_tables(url)
    except RainError as exc:
        raise SourceError(describe(url), str(exc)) from None
    if not found:
        raise SourceError(describe(url), NOT_A_STORE)


def _check_store(location: str | Path) -> str:
    """Check the audit store at ``location`` read-only; returns its name for people (a URL
    without its password)."""
    if is_postgres_url(location):
        _check_postgres_store(str(location))
        return describe(str(location))
    _check_audit_db(Path(location))
    return str(location)


def _read_records(location: str | Path, name: str) -> list[Any]:
    """Every record of the store, oldest first."""
    from rainlm.errors import RainError
    from rainlm.trace.store import TraceStore

    try:
        store = TraceStore(location)
    except RainError as exc:
        if not is_postgres_url(location):
            raise
        raise SourceError(name, redact_text(str(location), str(exc))) from None
    try:
        return list(store.iter_records(page=PAGE))  # oldest first; a live store's new records never shift a page
    finally:
        store.close()


def read_audit_db(location: str | Path) -> tuple[list[Answer], Counter[str]]:
    """Every answer of the audit database at ``location`` (an SQLite file or a
    ``postgresql://`` URL), oldest first, and the records skipped per reason ("no
    prompt"). Answers name a URL without its password."""
    if not is_postgres_url(location):
        location = Path(location)
    name = _check_store(location)
    records = _read_records(location, name)
    answers, skipped = [], Counter[str]()
    for rec in records:
        answer = _answer(name, rec)
        if answer is None:
            skipped["no prompt"] += 1
        else:
            answers.append(answer)
    return answers, skipped


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _answer(name: str, rec: Any) -> Answer | None:
    """The answer of ``rec`` (None without a readable prompt); ``name`` names the store."""
    request = rec.request if isinstance(rec.request, Mapping) else {}
    options = request.get("options") if isinstance(request.get("options"), Mapping) else {}
    raw = request.get("messages", request.get("prompt"))
    if isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        raw = "\n".join(raw)  # a completions prompt given as a list of strings
    prompt = chat_messages(raw, system=options.get("system"))
    if prompt is None:
        return None
    scores = rec.scores if isinstance(rec.scores, Mapping) else {}
    policy = rec.policy
    value = _number(scores.get("value"))
    if value is None and policy is not None:
        value = _number(policy.score)
    rubric = scores.get("rubric")
    judge = f"self-eval:{rubric}" if rubric else None
    refused = policy is not None and policy.action == "refused" and policy.original_text is not None
    text = policy.original_text if refused else rec.answer
    stats = rec.stats if isinstance(rec.stats, Mapping) else {}
    return Answer(
        prompt=prompt[0], chat=prompt[1], text=text or "",
        kind="greedy" if rec.config is None else "rain",
        method="greedy" if rec.config is None else "rain",
        group=("audit", name, rec.model, str(judge), prompt_key(prompt[0])),
        judge=judge, value=value, source=f"{name}, trace {rec.id}", model=rec.model,
        budget_limited=is_budget_limited(rec.finish_reason, stats.get("budget_exhausted")),
        error=rec.error or (f"unfinished ({rec.finish_reason})"
                            if rec.finish_reason in (STARTED, INTERRUPTED) else None),
        review=rec.review_state if rec.review_state in ("approved", "rejected") else None,
        replaced_by=rec.answer if refused else None)
