"""The audit trail's SQLite database: one file beside one process (the default).

One connection is shared by the store's threads under the store's lock
(``check_same_thread=False``); the journal is WAL (readers do not block the writer) and
a busy timeout lets ``rain review approve`` run while the server writes. Writers take
``BEGIN IMMEDIATE``, so two writers never interleave: row locks (``FOR UPDATE``) are not
needed and not spelled.

The schema changes only through ``MIGRATIONS``: named, applied in order, each in its own
transaction, and remembered in ``schema_migrations``. ``postgres_db.POSTGRES_MIGRATIONS``
holds the same names in PostgreSQL's dialect.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rainlm.errors import RainError
from rainlm.trace.location import ENV_VAR, MEMORY
from rainlm.trace.timestamps import utc_now

__all__ = ["SqliteDatabase", "MIGRATIONS", "apply_migrations"]

# NEVER edit, rename or reorder a migration once it has been released: databases in the
# field have already applied it under its name. Change the schema only by APPENDING a new
# ("NNNN_what_it_does", SQL) entry, here AND in postgres_db.POSTGRES_MIGRATIONS; it runs
# once, in its own transaction, on next open.
MIGRATIONS: list[tuple[str, str]] = [
    ("0001_create_traces", """
        CREATE TABLE traces (
            id            TEXT PRIMARY KEY,
            created_at    TEXT NOT NULL,          -- ISO-8601 UTC
            endpoint      TEXT NOT NULL,
            model         TEXT NOT NULL,
            review_state  TEXT NOT NULL DEFAULT 'none',
            finish_reason TEXT NOT NULL,
            answer        TEXT NOT NULL,
            seed          INTEGER,
            error         TEXT,
            request_json  TEXT NOT NULL,          -- JSON object
            config_json   TEXT,                   -- JSON object or NULL (greedy)
            scores_json   TEXT NOT NULL,          -- JSON object
            stats_json    TEXT NOT NULL,          -- JSON object
            trace_json    TEXT,                   -- JSON object or NULL
            policy_json   TEXT                    -- JSON object (PolicyDecision) or NULL
        );
        CREATE INDEX traces_created_at ON traces (created_at);
        CREATE INDEX traces_review_state ON traces (review_state, created_at);
        CREATE INDEX traces_model ON traces (model);
    """),
    ("0002_create_review_decisions", """
        CREATE TABLE review_decisions (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- decision order (history kept)
            trace_id   TEXT NOT NULL REFERENCES traces (id),
            decision   TEXT NOT NULL,
            note       TEXT,
            reviewer   TEXT,
            decided_at TEXT NOT NULL                        -- ISO-8601 UTC
        );
        CREATE INDEX review_decisions_trace ON review_decisions (trace_id, seq);
    """),
    ("0003_add_trace_owner", """
        -- who wrote a "started" record (a server instance), so that it, restarted, can
        -- mark its own unfinished records "interrupted"
        ALTER TABLE traces ADD COLUMN owner TEXT;
        CREATE INDEX traces_unfinished ON traces (finish_reason, owner);
    """),
    ("0004_add_review_holds", """
        -- the review queue shared by several reviewers: a pending record one reviewer
        -- took (TraceStore.claim_next) is held for them until held_until (ISO-8601 UTC)
        ALTER TABLE traces ADD COLUMN held_by TEXT;
        ALTER TABLE traces ADD COLUMN held_until TEXT;
    """),
]


def apply_migrations(conn: sqlite3.Connection,
                     migrations: Iterable[tuple[str, str]] = MIGRATIONS) -> list[str]:
    """Apply the migrations ``conn`` lacks, in order, each in its own transaction.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Returns the names
    applied now.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
    applied_now = []
    for name, sql in migrations:
        if name in done:  # up to date: no write lock taken (read-only commands stay readers)
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have applied it since we looked
            if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?",
                            (name,)).fetchone() is None:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                             (name, utc_now()))
                applied_now.append(name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return applied_now


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT mid-way)."""
    out, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


class SqliteDatabase:
    """One SQLite file (or ``:memory:``) as the store's database."""

    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    for_update = ""  # BEGIN IMMEDIATE already serialises writers
    for_update_skip_locked = ""
    escapes_nul = False  # SQLite stores NUL characters in TEXT

    def __init__(self, path: str | os.PathLike[str]):
        self.path: Path | str = MEMORY if str(path) == MEMORY else Path(path).expanduser()
        if self.path != MEMORY:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RainError(f"cannot create the folder of the audit database {self.path}: "
                                f"{exc}; pass another path (or set {ENV_VAR})") from exc
            if not Path(self.path).exists():
                # audit records hold users' prompts: readable by the owner only (0600)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None,
                                        check_same_thread=False)
            if self.path != MEMORY:
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            apply_migrations(self.conn)
        except sqlite3.DatabaseError as exc:
            raise RainError(f"cannot open the audit database {self.path}: {exc}; is it an "
                            f"SQLite file written by rainlm? Pass another path (or set "
                            f"{ENV_VAR})") from exc

    @property
    def where(self) -> str:
        """The database, for messages."""
        return str(self.path)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args)

    def begin(self, *, write: bool) -> None:
        """A writer takes the write lock at once (``BEGIN IMMEDIATE``); a reader needs no
        transaction (autocommit reads see committed data)."""
        if write:
            self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:  # SQLite may have rolled back already (disk full, ...)
            self.conn.execute("ROLLBACK")

    def reconnect_if_broken(self) -> None:
        """A file connection does not break."""

    def redact(self, text: str) -> str:
        return text

    def migrations_applied(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM schema_migrations ORDER BY name")]

    def close(self) -> None:
        self.conn.close()
