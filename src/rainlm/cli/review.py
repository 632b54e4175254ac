"""``rain review list | approve | reject``: decide on answers the fail-safe flagged.

The same decisions the server's ``/review`` page makes, from a terminal; the server
may be running (the database is shared safely).
"""

from __future__ import annotations

from pathlib import Path

import click

from rainlm.cli.trace import db_option, open_existing_store

__all__ = ["review_group"]


@click.group("review", epilog="""\b
Examples:
  rain review list
  rain review approve tr_3f2a --note "fine in context" --reviewer ana
  rain review reject tr_3f2a --note "step-by-step harm"
""")
def review_group() -> None:
    """Review flagged answers: list those pending, approve or reject them."""


@review_group.command("list", short_help="List answers awaiting review.")
@db_option
@click.option("--limit", metavar="N", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many, newest first.")
def review_list_command(db: Path | None, limit: int) -> None:
    """List answers awaiting review: id, time, score, prompt and answer (first lines)."""
    from rainlm.trace.view import first_line, fmt_num, prompt_text, score_of

    store = open_existing_store(db)
    try:
        records = store.list(review_state="pending", limit=limit)
    finally:
        store.close()
    if not records:
        click.echo("Nothing to review.")
        return
    for rec in records:
        click.echo(f"{rec.id}  {rec.created_at}  score {fmt_num(score_of(rec))}")
        click.echo(f"  prompt: {first_line(prompt_text(rec), 70)!r}")
        click.echo(f"  answer: {first_line(rec.answer, 70)!r}")


def _decide(trace_id: str, decision: str, note: str | None, reviewer: str | None,
            db: Path | None) -> None:
    store = open_existing_store(db)
    try:
        rec = store.decide(store.resolve(trace_id), decision, note=note, reviewer=reviewer)
    finally:
        store.close()
    click.echo(f"{rec.id}: {rec.review_state}")


def _decision_command(name: str, decision: str, verb: str) -> click.Command:
    @click.command(name, help=f"{verb} the flagged answer ID (it must be pending).",
                   short_help=f"{verb} a flagged answer.")
    @click.argument("trace_id", metavar="ID")
    @click.option("--note", metavar="TEXT", default=None, help="Why (stored with the decision).")
    @click.option("--reviewer", metavar="NAME", default=None, help="Who decided (stored with the decision).")
    @db_option
    def command(trace_id: str, note: str | None, reviewer: str | None, db: Path | None) -> None:
        _decide(trace_id, decision, note, reviewer, db)

    return command


review_group.add_command(_decision_command("approve", "approved", "Approve"))
review_group.add_command(_decision_command("reject", "rejected", "Reject"))
