"""Where the audit trail lives: an SQLite file (the default) or a PostgreSQL URL.

One rule for every command that opens it (``rain serve``, ``rain trace``, ``rain
review``, ``rain distill``, the answer log of ``rain generate``/``rain chat``): the
``--store``/``--db`` value, else ``$RAINLM_AUDIT_DB``, else
``~/.local/share/rainlm/audit.sqlite3``. A value starting with ``postgresql://`` or
``postgres://`` is a PostgreSQL server (libpq's URL form); anything else is a file path,
and ``:memory:`` a private in-memory database.

A URL's password never appears in messages: ``redact_url`` writes it as ``***``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["ENV_VAR", "MEMORY", "POSTGRES_SCHEMES", "default_location", "default_db_path",
           "is_postgres_url", "redact_url", "redact_text", "describe"]

ENV_VAR = "RAINLM_AUDIT_DB"
"""Environment variable naming the audit store (a file path or a postgresql:// URL)."""
MEMORY = ":memory:"
"""A private in-memory SQLite database (tests, throwaway servers)."""
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: object) -> bool:
    """``location`` is a PostgreSQL URL (``postgresql://...`` or ``postgres://...``)."""
    return isinstance(location, str) and location.lower().startswith(POSTGRES_SCHEMES)


def default_location() -> str | Path:
    """``$RAINLM_AUDIT_DB`` if set (a path or a URL), else
    ``~/.local/share/rainlm/audit.sqlite3``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return env if is_postgres_url(env) else Path(env).expanduser()
    return Path.home() / ".local" / "share" / "rainlm" / "audit.sqlite3"


def default_db_path() -> Path:
    """The default SQLite file: ``default_location()`` when it is a path."""
    location = default_location()
    if isinstance(location, str):
        raise ValueError(f"${ENV_VAR} is a PostgreSQL URL, not a file path")
    return location


_USERINFO_PASSWORD = re.compile(r"^(?P<scheme>[a-z]+://)(?P<user>[^:@/]*):(?P<pw>[^@]*)@",
                                re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password (in ``user:PASSWORD@`` or ``?password=``) as ``***``."""
    url = _USERINFO_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _QUERY_PASSWORD.sub(r"\1***", url)


def _url_secrets(url: str) -> set[str]:
    """The password of ``url`` in every form a message may quote it: as written, and
    percent-decoded (libpq quotes a component it cannot decode, e.g. ``se%zzcret``)."""
    from urllib.parse import unquote

    found = [m["pw"] for m in _USERINFO_PASSWORD.finditer(url)]
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_PASSWORD.finditer(url)]
    secrets = set(found) | {unquote(pw) for pw in found}
    try:  # libpq's own reading of the URL (psycopg: optional here)
        import psycopg

        secrets.add(psycopg.conninfo.conninfo_to_dict(url).get("password") or "")
    except Exception:  # noqa: BLE001 - psycopg missing, or a URL libpq cannot read
        pass
    return {s for s in secrets if s}


def redact_text(url: str, text: str) -> str:
    """``text`` (an error message, a log line) without ``url`` or its password: the URL is
    named as ``redact_url`` writes it, the password, in any form, as ``***``."""
    text = text.replace(url, redact_url(url))
    for secret in sorted(_url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def describe(location: str | os.PathLike[str]) -> str:
    """The store for people and logs: a file path as is, a URL without its password."""
    text = os.fspath(location)
    return redact_url(text) if is_postgres_url(text) else text
