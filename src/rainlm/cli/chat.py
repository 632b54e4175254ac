"""``rain chat``: a multi-turn conversation answered by RAIN, on stdin/stdout.

Each turn RAIN answers with the whole conversation so far as chat messages. Answers go
to stdout; notices and the progress line go to stderr. On a terminal the user is
prompted with ``you>``; piping a file of questions through ``rain chat`` prints only
the answers, one per turn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from rainlm.cli.answer_log import AnswerLog, log_options
from rainlm.cli.generate import budget_note
from rainlm.cli.options import RunOptions, search_options, services_of
from rainlm.cli.progress import ProgressLine, progress_enabled

__all__ = ["ChatSession", "chat_command", "run_chat"]

HELP_TEXT = "Commands: /reset (forget the conversation), /quit (leave), /help. EOF (Ctrl-D) leaves too."


@dataclass
class ChatSession:
    """The conversation so far, and how to answer the next turn."""

    backend: Any
    options: RunOptions
    embedder: Any = None
    on_progress: Callable[[Any], None] | None = None
    messages: list[dict[str, str]] = field(default_factory=list)
    log: Any = None
    """An AnswerLog every answer goes to (None: not logged)."""

    def __post_init__(self) -> None:
        self.config = self.options.config()
        if self.embedder is None:
            self.embedder = self.options.embedder

    def ask(self, text: str) -> Any:
        """Answer one user turn with RAIN; the turn and the answer join the conversation."""
        from rainlm.api import generate

        turn = self.messages + [{"role": "user", "content": text}]
        result = generate(self.backend, turn, self.config, embedder=self.embedder,
                          seed=self.options.seed, max_new_tokens=self.options.max_new_tokens,
                          system=self.options.system, on_progress=self.on_progress)
        self.messages = turn + [{"role": "assistant", "content": result.text.strip()}]
        if self.log is not None:
            self.log.record(result, detokenize=self.backend.detokenize,
                            request={"messages": turn, "options": self.options.__dict__})
        return result

    def reset(self) -> None:
        self.messages = []


def run_chat(session: ChatSession, lines: Iterable[str], *, write: Callable[[str], None],
             notice: Callable[[str], None], progress: ProgressLine | None = None) -> int:
    """Drive ``session`` from input ``lines``; returns the number of answered turns.

    ``write`` prints an answer (stdout); ``notice`` prints everything else (stderr).
    """
    answered = 0
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0].lower()
            if command in ("/quit", "/exit", "/q"):
                break
            if command == "/reset":
                session.reset()
                notice("(conversation cleared)")
            elif command in ("/help", "/?"):
                notice(HELP_TEXT)
            else:
                notice(f"unknown command {command!r}. {HELP_TEXT}")
            continue
        try:
            result = session.ask(text)
        except KeyboardInterrupt:
            if progress is not None:
                progress.clear()
            notice("(interrupted; the turn was dropped)")
            continue
        if progress is not None:
            progress.clear()
        write(result.text.strip())
        note = budget_note(result)
        if note is not None:
            notice(f"({note})")
        answered += 1
    return answered


def _input_lines(stream: TextIO, interactive: bool) -> Iterator[str]:
    """Lines typed by the user (with a ``you>`` prompt on a terminal) until EOF."""
    while True:
        if interactive:
            try:
                yield input("you> ")
            except EOFError:
                sys.stderr.write("\n")
                return
        else:
            line = stream.readline()
            if not line:
                return
            yield line


@click.command("chat", epilog="""\b
Examples:
  rain chat
  rain chat --preset truthful --max-new-tokens 64 --time-budget 30
  rain chat --no-log --system "Answer in one sentence."
""")
@search_options
@log_options
@click.pass_context
def chat_command(ctx: click.Context, log: bool, log_db: Any, **kwargs: Any) -> None:
    """Talk with the model; RAIN answers every turn.

    Type a message and press Enter. /reset forgets the conversation, /quit (or EOF,
    Ctrl-D) leaves. Answers go to stdout, everything else to stderr.
    """
    options = RunOptions.from_kwargs(kwargs)
    options.config()  # config errors before the model loads
    services = services_of(ctx)
    stdin = sys.stdin
    interactive = _isatty(stdin) and _isatty(sys.stdout)
    line = ProgressLine(progress_enabled(options.progress))
    line.status("loading model…")
    try:
        backend = services.load_backend(options.model_spec(), options.device)
        embedder = services.load_embedder(options.embedder, options.device)
    finally:
        line.clear()
    session = ChatSession(backend, options, embedder=embedder, on_progress=line,
                          log=AnswerLog(log, log_db, "rain chat"))

    def notice(message: str) -> None:
        click.echo(message, err=True)

    def write(answer: str) -> None:
        click.echo(f"rain> {answer}\n" if interactive else answer)

    if interactive:
        notice(f"rain chat on {getattr(backend, 'name', 'model')} "
               f"({options.preset} preset). {HELP_TEXT}")
    try:
        run_chat(session, _input_lines(stdin, interactive), write=write, notice=notice,
                 progress=line)
    except KeyboardInterrupt:
        line.clear()
        notice("")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
