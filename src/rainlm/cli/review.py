"""``rain review list | approve | reject``: decide on answers the fail-safe flagged.

The same decisions the server's ``/review`` page makes, from a terminal; the server
may be running (the database is shared safely). With several reviewers, ``rain review
next --reviewer NAME`` hands each one a different answer and holds it for them.
"""

from __future__ import annotations

import click

from rainlm.cli.trace import db_option, open_existing_store, terminal_safe

__all__ = ["review_group"]


@click.group("review", epilog="""\b
Examples:
  rain review list
  rain review next --reviewer ana          # take the oldest answer nobody holds
  rain review approve tr_3f2a --note "fine in context" --reviewer ana
  rain review reject tr_3f2a --note "step-by-step harm" --reviewer ana
  rain review list --store postgresql://rain@db:5432/rain   # the replicas' shared store
""")
def review_group() -> None:
    """Review flagged answers: list those pending, take the next one, approve or reject
    them."""


@review_group.command("list", short_help="List answers awaiting review.")
@db_option
@click.option("--limit", metavar="N", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many, newest first.")
def review_list_command(db: str | None, limit: int) -> None:
    """List answers awaiting review: id, time, score, prompt and answer (first lines)."""
    from rainlm.trace.view import first_line, fmt_num, prompt_text, score_of

    with open_existing_store(db) as store:
        records = store.list(review_state="pending", limit=limit)
        holds = store.holds([rec.id for rec in records])
        counts = store.review_counts()
    if not records:
        click.echo("Nothing to review.")
        return
    click.echo(_counts_line(counts))
    for rec in records:
        held = f"  held by {holds[rec.id][0]} until {holds[rec.id][1]}" if rec.id in holds else ""
        click.echo(terminal_safe(f"{rec.id}  {rec.created_at}  score "
                                 f"{fmt_num(score_of(rec))}{held}"))
        click.echo(terminal_safe(f"  prompt: {first_line(prompt_text(rec), 70)!r}"))
        click.echo(terminal_safe(f"  answer: {first_line(rec.answer, 70)!r}"))


def _counts_line(counts: dict[str, int]) -> str:
    return (f"{counts['pending']} pending ({counts['held']} held by a reviewer), "
            f"{counts['approved']} approved, {counts['rejected']} rejected")


@review_group.command("next", short_help="Take the next answer to review.")
@click.option("--reviewer", metavar="NAME", required=True,
              help="Who reviews: the answer is held for NAME, and no other reviewer gets it.")
@click.option("--hold", "hold_s", metavar="SECONDS", type=click.FloatRange(0, 86_400, min_open=True),
              default=600.0, show_default=True,
              help="How long the answer stays held for you (then it goes back to the queue).")
@db_option
def review_next_command(reviewer: str, hold_s: float, db: str | None) -> None:
    """Take the oldest flagged answer nobody holds (your own held one first) and show it;
    then `rain review approve|reject ID --reviewer NAME`. Several reviewers, on one store
    or on the replicas' shared PostgreSQL store, never get the same answer."""
    from rainlm.trace.view import prompt_text

    with open_existing_store(db) as store:
        rec = store.claim_next(reviewer, hold_s=hold_s)
        counts = store.review_counts()
    if rec is None:
        click.echo(f"Nothing to review. {_counts_line(counts)}")
        return
    click.echo(terminal_safe(f"{rec.id}  {rec.created_at}  held for {reviewer} for "
                             f"{hold_s:g} s"))
    click.echo(terminal_safe(f"prompt:\n{prompt_text(rec)}\n\nanswer:\n{rec.answer}\n"))
    click.echo(terminal_safe(f"rain review approve {rec.id} --reviewer {reviewer}   "
                             f"(or reject; {_counts_line(counts)})"))


def _decide(trace_id: str, decision: str, note: str | None, reviewer: str | None,
            db: str | None) -> None:
    with open_existing_store(db) as store:
        rec = store.decide(store.resolve(trace_id), decision, note=note, reviewer=reviewer)
    click.echo(terminal_safe(f"{rec.id}: {rec.review_state}"))


def _decision_command(name: str, decision: str, verb: str) -> click.Command:
    @click.command(name, help=f"{verb} the flagged answer ID (it must be pending).",
                   short_help=f"{verb} a flagged answer.")
    @click.argument("trace_id", metavar="ID")
    @click.option("--note", metavar="TEXT", default=None, help="Why (stored with the decision).")
    @click.option("--reviewer", metavar="NAME", default=None, help="Who decided (stored with the decision).")
    @db_option
    def command(trace_id: str, note: str | None, reviewer: str | None, db: str | None) -> None:
        _decide(trace_id, decision, note, reviewer, db)

    return command


review_group.add_command(_decision_command("approve", "approved", "Approve"))
review_group.add_command(_decision_command("reject", "rejected", "Reject"))
