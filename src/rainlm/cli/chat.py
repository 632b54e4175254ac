"""``rain chat``: a multi-turn conversation answered by RAIN, on stdin/stdout.

Each turn RAIN answers with the whole conversation so far as chat messages. Answers go
to stdout; notices and the progress display go to stderr. On a terminal the user is
prompted with ``you>`` (with line editing and the session's history through the
standard ``readline`` module where the platform has it), and the answer streams in
after ``rain>`` as RAIN commits it, a ticking status after it; piping a file of
questions through ``rain chat`` prints only the answers, whole, one per turn.
"""

from __future__ import annotations

import re
import shutil
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from rainlm.backends.base import stop_strings_of
from rainlm.cli.answer_log import AnswerLog, log_options
from rainlm.cli.generate import budget_note
from rainlm.cli.options import RunOptions, policy_file_option, search_options, services_of
from rainlm.cli.progress import InlineStatus, ProgressLine, progress_enabled
from rainlm.core.progress import ProgressEvent
from rainlm.core.stopping import truncate_at_stop

__all__ = ["AnswerStream", "ChatSession", "COMMANDS", "chat_command", "help_text", "run_chat",
           "streamable"]

COMMANDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("/help", "/?"), "list the commands and keys"),
    (("/reset",), "forget the conversation so far"),
    (("/quit", "/exit", "/q"), "leave"),
)
"""Every chat command: its names (the first is the one to use) and what it does."""

KEYS = ("Keys: Up/Down recall earlier lines; Ctrl-C drops the answer being searched; "
        "Ctrl-D (EOF) leaves.")


def help_text() -> str:
    """What ``/help`` prints: every command with its aliases, then the keys."""
    names = [" or ".join(aliases) for aliases, _ in COMMANDS]
    width = max(len(n) for n in names)
    rows = [f"  {n:<{width}}  {what}" for n, (_, what) in zip(names, COMMANDS)]
    return "\n".join(["Commands:", *rows, KEYS])


def _command_action(name: str) -> str | None:
    """The canonical name of the command ``name`` (``/exit`` -> ``/quit``), or None."""
    for names, _ in COMMANDS:
        if name in names:
            return names[0]
    return None


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
    params: Any = field(init=False)
    """What each answer is asked to be (a GenerationParams; the options' at first)."""

    def __post_init__(self) -> None:
        self.params = self.options.params
        if self.embedder is None:
            self.embedder = self.options.params.embedder

    @property
    def config(self) -> Any:
        """The search config of each answer."""
        return self.params.config

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """The strings an answer is cut at (the config's and the backend's own)."""
        return tuple(self.config.answers.stop_strings) + stop_strings_of(self.backend)

    def ask(self, text: str, on_progress: Callable[[Any], None] | None = None) -> Any:
        """Answer one user turn with RAIN; the turn and the answer join the conversation.

        ``on_progress`` replaces the session's own callback for this turn."""
        from rainlm.request import answer

        turn = self.messages + [{"role": "user", "content": text}]
        result = answer(self.backend, turn, self.params, embedder=self.embedder,
                        score=False, on_progress=on_progress if on_progress is not None
                        else self.on_progress).result
        self.messages = turn + [{"role": "assistant", "content": result.text.strip()}]
        if self.log is not None:
            self.log.record(result, detokenize=self.backend.detokenize,
                            request={"messages": turn, "options": self.options.to_dict()})
        return result

    def reset(self) -> None:
        self.messages = []


# ------------------------------------------------------------------ streaming
_HELD_TAIL = re.compile(r"[\s\ufffd]+\Z")


def _partial_stop(text: str, stop_strings: Sequence[str]) -> int:
    """Length of the longest end of ``text`` that could be the start of a stop string."""
    longest = 0
    for stop in stop_strings:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest


def streamable(committed: str, stop_strings: Sequence[str] = ()) -> str:
    """The part of the committed text that is sure to begin the final answer.

    The final answer is the committed text cut at the first stop string and stripped,
    so this leaves out a stop string and whatever follows it, an end that may yet grow
    into a stop string, surrounding whitespace and a trailing U+FFFD (the first bytes of
    a character whose other bytes are not committed yet). As commits only extend the
    text, each result extends the one before."""
    text = truncate_at_stop(committed, stop_strings)
    text = text[: len(text) - _partial_stop(text, stop_strings)]
    return _HELD_TAIL.sub("", text.lstrip())


def _advance_cells(cells: int, text: str) -> int:
    """Terminal cells on the cursor's line after writing ``text`` from ``cells``
    (a newline starts over; wide characters take two cells, combining ones none)."""
    for ch in text:
        if ch in "\n\r":
            cells = 0
        elif ch == "\t":
            cells += 8 - cells % 8
        elif unicodedata.combining(ch) or unicodedata.category(ch) in ("Cc", "Cf", "Me"):
            continue
        else:
            cells += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return cells


def _room(cells: int, columns: int) -> int:
    """Columns left after the cursor, ``cells`` into a (possibly wrapped) line."""
    used = cells % columns
    if cells and not used:
        return 0  # the line is exactly full: the cursor waits at the margin
    return columns - used


def _terminal_columns() -> int:
    return max(shutil.get_terminal_size((80, 24)).columns, 1)


class AnswerStream:
    """``on_progress`` for a terminal: prints each answer as RAIN commits it.

    ``begin`` prints the prefix (``rain> ``) and starts the status's clock; each
    progress event prints only the text committed since the last one (see
    ``streamable`` for what is held back) and redraws the ``status`` after it;
    ``finish`` stops the clock, erases the status and prints the rest of the final
    answer, so the pieces printed join up to exactly the final answer. Should the final
    answer ever not extend what was printed (a tokenizer decoding a prefix differently),
    the whole answer is printed again on a line of its own.
    """

    def __init__(self, write: Callable[[str], None], *, status: InlineStatus | None = None,
                 prefix: str = "rain> ", stop_strings: Sequence[str] = (),
                 columns: Callable[[], int] = _terminal_columns):
        self.write = write
        """Writes text as it is (no newline added) and flushes it."""
        self.status = status if status is not None else InlineStatus(False)
        self.prefix = prefix
        self.stop_strings = tuple(stop_strings)
        self.columns = columns
        self.printed = ""
        self._cells = 0

    def _emit(self, text: str) -> None:
        """Write ``text`` and tell the status how much room the cursor's line has left."""
        self.write(text)
        self._cells = _advance_cells(self._cells, text)
        self.status.room = _room(self._cells, self.columns())

    def begin(self) -> None:
        """A new answer: print the prefix and start the clock."""
        self.printed, self._cells = "", 0
        with self.status.lock:
            self._emit(self.prefix)
        self.status.start_ticking()

    def __call__(self, event: ProgressEvent) -> None:
        with self.status.lock:
            shown = streamable(event.committed_text, self.stop_strings)
            if shown.startswith(self.printed) and len(shown) > len(self.printed):
                self.status.clear()
                self._emit(shown[len(self.printed):])
                self.printed = shown
            self.status(event)

    def finish(self, answer: str | None) -> None:
        """End the answer with the rest of ``answer`` (the final, stripped text) and a
        blank line; ``answer`` None: the turn was dropped, just end the line."""
        self.status.stop_ticking()
        self.status.clear()
        if answer is None:
            self.write("\n")
        elif answer.startswith(self.printed):
            self.write(answer[len(self.printed):] + "\n\n")
        else:
            self.write(f"\n{self.prefix}{answer}\n\n")


# ------------------------------------------------------------------ the loop
def _run_command(session: ChatSession, text: str, notice: Callable[[str], None]) -> bool:
    """Carry out the ``/command`` in ``text``; False when it is the one to leave."""
    name = text.split()[0].lower()
    action = _command_action(name)
    if action == "/quit":
        return False
    if action == "/reset":
        session.reset()
        notice("(conversation cleared)")
    elif action == "/help":
        notice(help_text())
    else:
        notice(f"unknown command {name!r}. {help_text()}")
    return True


def _answer(session: ChatSession, text: str, *, write: Callable[[str], None],
            progress: ProgressLine | None, stream: AnswerStream | None) -> Any:
    """Ask one turn and show its answer: streamed as committed, or whole when done."""
    if stream is not None:
        answer = None
        stream.begin()
        try:
            result = session.ask(text, on_progress=stream)
            answer = result.text.strip()
        finally:
            stream.finish(answer)
        return result
    if progress is not None:
        progress.start_ticking()
    try:
        result = session.ask(text)
    finally:
        if progress is not None:
            progress.stop_ticking()
            progress.clear()
    write(result.text.strip())
    return result


def run_chat(session: ChatSession, lines: Iterable[str], *, write: Callable[[str], None],
             notice: Callable[[str], None], progress: ProgressLine | None = None,
             stream: AnswerStream | None = None) -> int:
    """Drive ``session`` from input ``lines``; returns the number of answered turns.

    ``write`` prints a whole answer (stdout) once it is done, unless ``stream`` prints
    each answer as it is committed; ``notice`` prints everything else (stderr);
    ``progress`` (without ``stream``) is the status line, ticking during each search.
    """
    answered = 0
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        if text.startswith("/"):
            if not _run_command(session, text, notice):
                break
            continue
        try:
            result = _answer(session, text, write=write, progress=progress, stream=stream)
        except KeyboardInterrupt:
            notice("(interrupted; the turn was dropped)")
            continue
        note = budget_note(result)
        if note is not None:
            notice(f"({note})")
        answered += 1
    return answered


def _line_editing() -> bool:
    """Give ``input()`` line editing and the session's history (Up/Down) by importing
    the standard ``readline`` module; False where the platform lacks it (Windows)."""
    try:
        import readline  # noqa: F401  (importing it is what hooks it into input())
    except ImportError:
        return False
    return True


def _input_lines(stream: TextIO, interactive: bool) -> Iterator[str]:
    """Lines typed by the user (with a ``you>`` prompt on a terminal) until EOF."""
    if interactive:
        _line_editing()
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


def _write_raw(text: str) -> None:
    """Write to stdout as it is, flushed (a streamed piece of an answer)."""
    click.echo(text, nl=False)


@click.command("chat", epilog="""\b
Examples:
  rain chat
  rain chat --preset truthful --max-new-tokens 64 --time-budget 30
  rain chat --no-log --system "Answer in one sentence."
  rain chat --policy-file acme.toml
""")
@search_options
@policy_file_option
@log_options
@click.pass_context
def chat_command(ctx: click.Context, log: bool, log_db: Any, **kwargs: Any) -> None:
    """Talk with the model; RAIN answers every turn.

    Type a message and press Enter (Up/Down recall earlier lines). /reset forgets the
    conversation, /help lists the commands, /quit (or EOF, Ctrl-D) leaves. On a
    terminal the answer appears as it is committed; answers go to stdout, everything
    else to stderr.
    """
    options = RunOptions.from_kwargs(kwargs)  # config errors before the model loads
    services = services_of(ctx)
    stdin = sys.stdin
    interactive = _isatty(stdin) and _isatty(sys.stdout)
    line = ProgressLine(progress_enabled(options.progress))
    line.status("loading model…")
    try:
        backend = options.open_backend(services)
        embedder = services.load_embedder(options.params.embedder, options.device)
    finally:
        line.clear()
    session = ChatSession(backend, options, embedder=embedder, on_progress=line,
                          log=AnswerLog(log, log_db, "rain chat"))
    stream = None
    if interactive:
        stream = AnswerStream(_write_raw, status=InlineStatus(line.enabled),
                              stop_strings=session.stop_strings)

    def notice(message: str) -> None:
        click.echo(message, err=True)

    if interactive:
        policy = options.params.policy
        judged = f", policy {policy.name!r}" if policy is not None else ""
        notice(f"rain chat on {getattr(backend, 'name', 'model')} ({options.config().preset_name} "
               f"preset{judged}). /help lists the commands; Ctrl-D leaves.")
    try:
        run_chat(session, _input_lines(stdin, interactive), write=click.echo, notice=notice,
                 progress=line, stream=stream)
    except KeyboardInterrupt:
        line.clear()
        notice("")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
