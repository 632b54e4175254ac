"""Which reader reads which source: an SQLite file is an audit database, anything else a
bench results file (JSONL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rainlm.distill.answers import Answer, SourceError

__all__ = ["SourceSummary", "read_sources"]


@dataclass
class SourceSummary:
    """What was read from one source."""

    path: Path
    """The file."""
    kind: str
    """"audit" (an audit database) or "bench" (a results file)."""
    answers: int = 0
    """Answers read from it."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Records not read, per reason (an audit record without a readable prompt)."""


def read_sources(paths: Iterable[str | Path]) -> tuple[list[Answer], list[SourceSummary]]:
    """Every answer of every source, in order (a file named twice is read once)."""
    from rainlm.distill.audit import looks_like_sqlite, read_audit_db
    from rainlm.distill.bench_files import read_bench_file

    answers: list[Answer] = []
    summaries: list[SourceSummary] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise SourceError(path, "no such file; pass bench results files (JSONL) or an "
                                    "audit database")
        if path.is_dir():
            raise SourceError(path, "is a folder; pass the results files in it (e.g. "
                                    f"{path}/*.jsonl) or an audit database file")
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if looks_like_sqlite(path):
            read, skipped = read_audit_db(path)
            summaries.append(SourceSummary(path, "audit", len(read), skipped))
        else:
            read = read_bench_file(path)
            summaries.append(SourceSummary(path, "bench", len(read)))
        answers += read
    return answers, summaries
