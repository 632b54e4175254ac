"""``rain trace list | show | html``: read the audit trail ``rain serve`` writes.

Read-only: a missing database is an error saying where it looked, never a new empty file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rainlm.jsonable import to_json_text

__all__ = ["trace_group", "db_option", "open_existing_store", "DB_HELP"]

DB_HELP = ("Audit store that `rain serve`, `rain generate` and `rain chat` write: an "
           "SQLite file, or a postgresql://USER@HOST:PORT/DB URL shared by several servers "
           "(password from PGPASSWORD or ~/.pgpass rather than the URL) "
           "[default: $RAINLM_AUDIT_DB, else ~/.local/share/rainlm/audit.sqlite3].")


def db_option(func: Any, *, dest: str = "db") -> Any:
    """``--store PATH|URL`` (also ``--db``; default:
    ``rainlm.trace.location.default_location()``), stored as ``dest``."""
    return click.option("--store", "--db", dest, default=None, metavar="PATH|URL",
                        help=DB_HELP)(func)


def open_existing_store(db: str | Path | None) -> Any:
    """The TraceStore at ``db`` (or the default location); RainError when it names a file
    that is not there, or a PostgreSQL database without rainlm's tables."""
    from rainlm.errors import RainError
    from rainlm.trace.location import ENV_VAR, default_location, describe, is_postgres_url
    from rainlm.trace.store import TraceStore

    location = default_location() if db is None else (
        db if is_postgres_url(db) else Path(db).expanduser())
    if is_postgres_url(location):  # read-only commands never give a wrong database tables
        from rainlm.trace.postgres_db import NOT_A_STORE, has_store_tables

        if not has_store_tables(str(location)):
            raise RainError(f"{describe(str(location))}: {NOT_A_STORE}")
    elif not Path(location).is_file():
        source = "--store" if db is not None else (
            f"${ENV_VAR}" if _env_set(ENV_VAR) else "the default location")
        raise RainError(f"no audit database at {location} (from {source}); point to the file "
                        f"`rain serve` writes with --store PATH (or a postgresql:// URL), or "
                        f"the {ENV_VAR} environment variable")
    return TraceStore(location)


def _env_set(name: str) -> bool:
    import os

    return bool(os.environ.get(name))


def _score(rec: Any) -> str:
    from rainlm.trace.view import fmt_num, score_of

    return fmt_num(score_of(rec))


SHOW_EPILOG = """\b
Examples:
  rain trace show tr_3f2a            # a unique start of the id is enough
  rain trace show tree.json          # the file `rain generate --trace tree.json` wrote
  rain trace show tr_3f2a --json
"""
HTML_EPILOG = """\b
Examples:
  rain trace html tr_3f2a --open
  rain trace html tree.json --out tree.html
"""


@click.group("trace", epilog="""\b
Examples:
  rain trace list --limit 5
  rain trace show tr_3f2a
  rain trace html tr_3f2a --open
  rain trace unfinished                 # requests a killed replica left "started"
""")
def trace_group() -> None:
    """Inspect stored requests: their answers, search trees, policy and review."""


@trace_group.command("list", short_help="List stored records, newest first.")
@db_option
@click.option("--limit", metavar="N", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show at most this many records, newest first.")
@click.option("--state", type=click.Choice(["none", "pending", "approved", "rejected"]),
              default=None, help="Only records in this review state.")
def trace_list_command(db: str | None, limit: int, state: str | None) -> None:
    """List stored records, newest first: id, time, review state, score, prompt."""
    from rainlm.trace.view import first_line, prompt_text

    with open_existing_store(db) as store:
        records = store.list(review_state=state, limit=limit)
    if not records:
        click.echo("No records" + (f" in review state {state!r}" if state else "") + ".")
        return
    for rec in records:
        click.echo(terminal_safe(f"{rec.id}  {rec.created_at}  {rec.review_state:<8}  "
                                 f"score {_score(rec):>6}  {rec.finish_reason:<11}  "
                                 f"{first_line(prompt_text(rec), 50)!r}"))


@trace_group.command("unfinished", short_help="Requests whose server never finished them.",
                     epilog="""\b
Examples:
  rain trace unfinished --store "$RAINLM_AUDIT_DB"
  rain trace unfinished --mark "rain serve@rain-7d9f-abcde:8000"   # a replica gone for good
""")
@db_option
@click.option("--mark", "mark_owner", metavar="OWNER", default=None,
              help="Mark OWNER's unfinished records \"interrupted\" (do it only when that "
                   "replica is gone: a live one's running requests are unfinished too).")
def trace_unfinished_command(db: str | None, mark_owner: str | None) -> None:
    """List the "started" records per server (owner "rain serve@HOST:PORT"): requests in
    flight, or left by a replica that was killed. A replica that restarts under the same
    host and port marks its own "interrupted"; one that never comes back (a Kubernetes
    pod replaced under a new name) is marked here."""
    with open_existing_store(db) as store:
        if mark_owner is not None:
            marked = store.mark_unfinished(mark_owner)
            click.echo(terminal_safe(f"{marked} record(s) of {mark_owner} marked "
                                     f"\"interrupted\""))
            return
        rows = store.unfinished()
    if not rows:
        click.echo("No unfinished records.")
        return
    for owner, count, oldest in rows:
        click.echo(terminal_safe(f"{count:>5}  since {oldest}  {owner}"))


def terminal_safe(text: str) -> str:
    """``text`` with control characters (escape sequences a reviewer or a prompt could plant,
    which a terminal would obey) written out as ``\\x1b``-style escapes; newlines and
    tabs stay."""
    return "".join(c if c in "\n\t" or (c.isprintable() and not 0x80 <= ord(c) < 0xA0)
                   else repr(c)[1:-1] for c in text)


@trace_group.command("show", short_help="Show one record and its search tree as text.",
                     epilog=SHOW_EPILOG)
@click.argument("trace_id", metavar="ID|PREFIX|FILE.json")
@db_option
@click.option("--max-depth", metavar="N", type=click.IntRange(min=0), default=None,
              help="Hide rewound nodes more than N levels below the first root.")
@click.option("--min-visits", metavar="N", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Hide rewound nodes visited fewer times than this.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON instead.")
def trace_show_command(trace_id: str, db: str | None, max_depth: int | None,
                       min_visits: float, as_json: bool) -> None:
    """Show one record: header and the search tree (* answer path, - rewound)."""
    from rainlm.trace.render_text import render_tree_text

    rec = load_record(trace_id, db)
    if as_json:
        click.echo(to_json_text(rec.to_dict(), indent=2))  # unprintables escaped
    else:
        click.echo(terminal_safe(render_tree_text(rec, max_depth=max_depth,
                                                  min_visits=min_visits)), nl=False)


@trace_group.command("html", short_help="Write one record as a standalone HTML page.",
                     epilog=HTML_EPILOG)
@click.argument("trace_id", metavar="ID|PREFIX|FILE.json")
@db_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE.html", help="Write the page here (one standalone file). "
                                        "Default: <id>.html in the current folder.")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the web browser.")
def trace_html_command(trace_id: str, db: str | None, out: Path | None, open_page: bool) -> None:
    """Write one record as a standalone HTML page with a foldable search tree."""
    from rainlm.errors import RainError
    from rainlm.trace.render_html import render_tree_html

    rec = load_record(trace_id, db)
    out = out if out is not None else Path(f"{Path(rec.id).stem}.html")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_tree_html(rec), encoding="utf-8")
    except OSError as exc:
        raise RainError(f"cannot write {out}: {exc}; pass another --out FILE.html") from exc
    click.echo(str(out))
    if open_page:
        import webbrowser

        webbrowser.open(out.resolve().as_uri())


def load_record(id_or_file: str, db: str | None) -> Any:
    """A record by full id, unique id prefix (``tr_3f2a``), or a trace JSON file that
    ``rain generate --trace`` wrote."""
    from rainlm.trace.from_result import record_from_trace_file

    if id_or_file.endswith(".json") and Path(id_or_file).expanduser().is_file():
        return record_from_trace_file(Path(id_or_file).expanduser())
    with open_existing_store(db) as store:
        return store.get(store.resolve(id_or_file))
