"""Which reader reads which source: a ``postgresql://`` URL is an audit store on a
PostgreSQL server, an SQLite file an audit database, anything else a bench results file
(JSONL). A URL is shown and stored without its password (``describe``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rainlm.distill.answers import Answer, SourceError
from rainlm.trace.location import describe, is_postgres_url

__all__ = ["SourceSummary", "read_sources"]


@dataclass
class SourceSummary:
    """What was read from one source."""

    path: Path | str
    """The file, or the PostgreSQL store's URL without its password."""
    kind: str
    """"audit" (an audit database) or "bench" (a results file)."""
    answers: int = 0
    """Answers read from it."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Records not read, per reason (an audit record without a readable prompt)."""


def read_sources(paths: Iterable[str | Path]) -> tuple[list[Answer], list[SourceSummary]]:
    """Every answer of every source, in order: bench results files, audit database files
    and ``postgresql://`` audit store URLs (a file or URL named twice is read once)."""
    answers: list[Answer] = []
    summaries: list[SourceSummary] = []
    seen: set[Path | str] = set()
    for raw in paths:
        source = str(raw) if is_postgres_url(raw) else _existing_file(raw)
        key = source if isinstance(source, str) else source.resolve()
        if key in seen:
            continue
        seen.add(key)
        read, summary = _read_url(source) if isinstance(source, str) else _read_file(source)
        answers += read
        summaries.append(summary)
    return answers, summaries


def _existing_file(raw: str | Path) -> Path:
    """``raw`` as a path; SourceError when it is missing or a folder."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise SourceError(path, "no such file; pass bench results files (JSONL), an audit "
                                "database file or a postgresql:// audit store URL")
    if path.is_dir():
        raise SourceError(path, "is a folder; pass the results files in it (e.g. "
                                f"{path}/*.jsonl) or an audit database file")
    return path


def _read_url(url: str) -> tuple[list[Answer], SourceSummary]:
    """The answers of the PostgreSQL audit store at ``url``."""
    from rainlm.distill.audit import read_audit_db

    read, skipped = read_audit_db(url)
    return read, SourceSummary(describe(url), "audit", len(read), skipped)


def _read_file(path: Path) -> tuple[list[Answer], SourceSummary]:
    """The answers of an audit database file (SQLite) or a bench results file."""
    from rainlm.distill.audit import looks_like_sqlite, read_audit_db
    from rainlm.distill.bench_files import read_bench_file

    if looks_like_sqlite(path):
        read, skipped = read_audit_db(path)
        return read, SourceSummary(path, "audit", len(read), skipped)
    read = read_bench_file(path)
    return read, SourceSummary(path, "bench", len(read))
