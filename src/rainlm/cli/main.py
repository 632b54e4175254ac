"""The ``rain`` command: ``rain generate`` and ``rain chat``.

User errors (``rainlm.errors.RainError``) are printed as ``Error: <message>`` on stderr
with exit code 2, never as a traceback; bad option values get click's usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from rainlm import __version__
from rainlm.cli.bench import bench_group
from rainlm.cli.frontier import frontier_command, frontier_report_command
from rainlm.cli.calibrate import calibrate_command
from rainlm.cli.chat import chat_command
from rainlm.cli.cluster import cluster_command
from rainlm.cli.distill import distill_group
from rainlm.cli.generate import generate_command
from rainlm.cli.pilot import pilot_command
from rainlm.cli.serve import serve_command
from rainlm.cli.review import review_group
from rainlm.cli.trace import trace_group
from rainlm.errors import RainError

__all__ = ["cli", "main", "RainCommandError"]

USER_ERROR_EXIT = 2


class RainCommandError(click.ClickException):
    """A RainError shown the click way: ``Error: <message>`` on stderr, exit code 2."""

    exit_code = USER_ERROR_EXIT


class RainGroup(click.Group):
    """A group whose subcommands' RainErrors become clean error messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RainError as exc:
            raise RainCommandError(str(exc)) from None


@click.group(cls=RainGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="rain",
                      message="%(prog)s (rainlm) %(version)s")
def cli() -> None:
    """RAIN: safer answers from a frozen language model by searching, self-evaluating
    and rewinding (Rewindable Auto-regressive INference).

    By default the embedded SmolLM2-135M-Instruct model answers; nothing is downloaded.
    Run `rain COMMAND --help` for a command's options.
    """


cli.add_command(generate_command)
cli.add_command(chat_command)
bench_group.add_command(frontier_command)
bench_group.add_command(frontier_report_command)
cli.add_command(bench_group)
cli.add_command(calibrate_command)
cli.add_command(serve_command)
cli.add_command(cluster_command)
cli.add_command(trace_group)
cli.add_command(review_group)
cli.add_command(distill_group)
cli.add_command(pilot_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``rain``)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="rain")
    except RainError as exc:  # raised outside a subcommand (the group converts the rest)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":  # pragma: no cover
    main()
