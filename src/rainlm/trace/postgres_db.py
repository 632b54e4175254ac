"""The audit trail's PostgreSQL database: one store shared by several ``rain serve``
replicas, reviewers and commands (psycopg 3).

- The same named, ordered migrations as SQLite (``POSTGRES_MIGRATIONS``; the names must
  match ``sqlite_db.MIGRATIONS``), the same tables and columns, the same record format
  (JSON as text, times as ISO-8601 text). Replicas that start together take an advisory
  lock, so each migration runs once.
- One connection per store under the store's lock; a connection the server dropped
  (restart, failover) is opened again at the next call.
- Review decisions lock their row (``FOR UPDATE``); the review queue hands out records
  with ``FOR UPDATE SKIP LOCKED``, so two reviewers never take the same one.
- The URL's password is never shown: messages and errors name the URL with ``***``.
  Prefer a password from ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads both) over one in
  the URL, which other users of the machine may see in the process list.
- PostgreSQL text cannot hold NUL characters: the store writes one as ``\\x00`` (as a
  lone surrogate is written ``\\ud800``), so nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rainlm.errors import RainError
from rainlm.trace.location import redact_text, redact_url
from rainlm.trace.timestamps import utc_now

__all__ = ["PostgresDatabase", "POSTGRES_MIGRATIONS", "apply_postgres_migrations",
           "PSYCOPG_INSTALL", "NOT_A_STORE", "has_store_tables"]

PSYCOPG_INSTALL = "pip install 'rainlm[postgres]' (psycopg[binary]==3.3.6)"
NOT_A_STORE = ("not a rainlm audit store: this PostgreSQL database has no 'traces' table "
               "(nothing was changed in it); pass the URL `rain serve --store` writes to "
               "(or $RAINLM_AUDIT_DB)")
_CONNECT = {"connect_timeout": 10, "application_name": "rainlm",
            # a connection a firewall or a failover dropped silently is found in about a
            # minute, not after the kernel's two hours
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
            "keepalives_count": 3, "tcp_user_timeout": 60_000}
_MIGRATION_LOCK = 7_246_117_309_114_502  # pg_advisory_lock key: "rainlm migrations"

# NEVER edit, rename or reorder a migration once released; append, here AND in
# sqlite_db.MIGRATIONS, under the same name.
POSTGRES_MIGRATIONS: list[tuple[str, str]] = [
    ("0001_create_traces", """
        CREATE TABLE traces (
            id            TEXT PRIMARY KEY,
            created_at    TEXT NOT NULL,
            endpoint      TEXT NOT NULL,
            model         TEXT NOT NULL,
            review_state  TEXT NOT NULL DEFAULT 'none',
            finish_reason TEXT NOT NULL,
            answer        TEXT NOT NULL,
            seed          BIGINT,
            error         TEXT,
            request_json  TEXT NOT NULL,
            config_json   TEXT,
            scores_json   TEXT NOT NULL,
            stats_json    TEXT NOT NULL,
            trace_json    TEXT,
            policy_json   TEXT
        );
        CREATE INDEX traces_created_at ON traces (created_at);
        CREATE INDEX traces_review_state ON traces (review_state, created_at);
        CREATE INDEX traces_model ON traces (model);
    """),
    ("0002_create_review_decisions", """
        CREATE TABLE review_decisions (
            seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            trace_id   TEXT NOT NULL REFERENCES traces (id),
            decision   TEXT NOT NULL,
            note       TEXT,
            reviewer   TEXT,
            decided_at TEXT NOT NULL
        );
        CREATE INDEX review_decisions_trace ON review_decisions (trace_id, seq);
    """),
    ("0003_add_trace_owner", """
        ALTER TABLE traces ADD COLUMN owner TEXT;
        CREATE INDEX traces_unfinished ON traces (finish_reason, owner);
    """),
    ("0004_add_review_holds", """
        ALTER TABLE traces ADD COLUMN held_by TEXT;
        ALTER TABLE traces ADD COLUMN held_until TEXT;
    """),
]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise RainError(f"a postgresql:// audit store needs psycopg 3: {PSYCOPG_INSTALL}"
                        ) from None
    return psycopg


def has_store_tables(url: str) -> bool:
    """Whether the database at ``url`` has rainlm's ``traces`` table, checked in a
    read-only transaction (read-only commands never give a wrong database rainlm's
    tables). RainError, without the password, when it cannot be reached."""
    psycopg = _psycopg()
    try:
        with psycopg.connect(url, **_CONNECT) as conn:
            conn.read_only = True
            found = conn.execute("SELECT to_regclass('traces')").fetchone()[0]
            conn.rollback()
    except psycopg.Error as exc:
        raise RainError(f"cannot read the audit store {redact_url(url)}: "
                        f"{redact_text(url, str(exc)).strip()}") from None
    return found is not None


def apply_postgres_migrations(conn: Any, migrations: Iterable[tuple[str, str]]
                              = POSTGRES_MIGRATIONS) -> list[str]:
    """Apply the migrations ``conn`` (autocommit) lacks, in order, each in its own
    transaction, under an advisory lock that replicas starting together share. Returns
    the names applied now."""
    migrations = list(migrations)
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is not None:
        done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        if all(name in done for name, _ in migrations):
            return []  # up to date: no lock taken
    applied_now = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        for name, sql in migrations:
            if name in done:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (name, applied_at) "
                             "VALUES (%s, %s)", (name, utc_now()))
            applied_now.append(name)
    finally:
        if not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied_now


class PostgresDatabase:
    """A PostgreSQL database (a ``postgresql://`` URL) as the store's database."""

    dialect = "postgresql"
    for_update = " FOR UPDATE"
    for_update_skip_locked = " FOR UPDATE SKIP LOCKED"
    escapes_nul = True  # PostgreSQL text cannot hold NUL characters

    def __init__(self, url: str):
        self._url = url
        self.path = redact_url(url)  # what messages name (never the password)
        psycopg = _psycopg()
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        self.conn: Any = None
        try:
            self._connect()
            apply_postgres_migrations(self.conn)
        except psycopg.Error as exc:
            self.close()
            raise RainError(f"cannot open the audit store {self.path}: "
                            f"{self.redact(str(exc)).strip()}") from None

    @property
    def where(self) -> str:
        return self.path

    def _connect(self) -> None:
        psycopg = _psycopg()
        self.conn = psycopg.connect(self._url, autocommit=True, **_CONNECT)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        # the store writes SQL with "?" placeholders (sqlite3's); psycopg's are "%s"
        return self.conn.execute(sql.replace("%", "%%").replace("?", "%s"), args)

    def begin(self, *, write: bool) -> None:
        """Open a transaction (reads too: one snapshot). A connection the server dropped
        (a restart, a failover, an idle cut) is found here, before anything ran in it:
        it is opened again and the transaction begun on the new one."""
        psycopg = _psycopg()
        try:
            self.conn.execute("BEGIN" if write else "BEGIN READ ONLY")
        except psycopg.OperationalError:
            if not self.conn.broken:
                raise
            self._connect()
            self.conn.execute("BEGIN" if write else "BEGIN READ ONLY")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if not self.conn.broken and self.conn.info.transaction_status != 0:  # not IDLE
            self.conn.execute("ROLLBACK")

    def reconnect_if_broken(self) -> None:
        """Open the connection again when the server dropped it (restart, failover)."""
        if self.conn is None or self.conn.broken or self.conn.closed:
            self._connect()

    def redact(self, text: str) -> str:
        """``text`` without the URL's password (psycopg's messages may quote the URL)."""
        return redact_text(self._url, text)

    def migrations_applied(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM schema_migrations ORDER BY name")]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
