"""``rain chat`` on a terminal: streamed answers, the ticking clock, /help, line editing.

The scripted model of ``test_cli_scripted`` answers; nothing here loads a real model.
Threads are synchronised with events (a blocked model call, a recorded write), never
with sleeps. The pseudo-terminal tests run ``rain chat`` in a child process (the same
click command as the ``rain`` script, given the scripted backend through ``Services``,
which the installed script has no way to receive).
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rainlm.cli.chat import (COMMANDS, AnswerStream, ChatSession, _input_lines, _line_editing,
                             help_text, run_chat, streamable)
from rainlm.cli.progress import MIN_ROOM, InlineStatus, ProgressLine
from rainlm.core.progress import ProgressEvent
from rainlm.backends.scripted import ScriptedBackend
from tests.cli.test_cli_scripted import (CUE, PROMPT, REFUSAL, VOCAB, make_backend, run_options,
                                         script)

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
"""Longest wait for something another thread or process does (a failure, not a pace)."""


def event(text: str, steps: int = 0, searches: int = 1, elapsed: float = 0.0) -> ProgressEvent:
    return ProgressEvent(committed_text=text, searches=searches, steps=steps, elapsed_s=elapsed)


class Recorder:
    """A text stream that keeps every write and lets a test wait for one it expects."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self._changed = threading.Condition()

    def write(self, text: str) -> int:
        with self._changed:
            self.writes.append(text)
            self._changed.notify_all()
        return len(text)

    def flush(self) -> None:
        pass

    def wait_for(self, found, timeout: float = WAIT_S):
        """The first write for which ``found(write)`` is truthy (waits for it)."""
        with self._changed:
            seen = 0
            deadline = time.monotonic() + timeout
            while True:
                for text in self.writes[seen:]:
                    hit = found(text)
                    if hit:
                        return hit
                seen = len(self.writes)
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise AssertionError(f"nothing matching was written: {self.writes!r}")


def searching_session(backend: ScriptedBackend | None = None, **overrides) -> ChatSession:
    """A scripted session that commits the refusal in three steps (" I", " can't help",
    " with that.") instead of accepting the whole judged answer at once."""
    session = ChatSession(backend or make_backend(),
                          run_options(embedder="none", max_new_tokens=12))
    session.params = session.params.replace(
        config=session.config.replace(accept_value=None, **overrides))
    return session


# ----------------------------------------------------------------------- /help
def test_help_lists_every_command_and_every_command_works():
    text = help_text()
    for names, what in COMMANDS:
        for name in names:
            assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text), name
        assert what in text
    assert "Up/Down" in text and "Ctrl-D" in text and "Ctrl-C" in text
    for name in ("/help", "/?", "/HELP"):
        notices: list[str] = []
        run_chat(ChatSession(make_backend(), run_options(embedder="none")), [name],
                 write=print, notice=notices.append)
        assert notices == [text]
    for name in ("/quit", "/exit", "/q"):
        answers: list[str] = []
        n = run_chat(ChatSession(make_backend(), run_options(embedder="none", max_new_tokens=12)),
                     [name, PROMPT], write=answers.append, notice=print)
        assert n == 0 and answers == []
    session = ChatSession(make_backend(), run_options(embedder="none"))
    session.messages = [{"role": "user", "content": "hi"}]
    notices = []
    run_chat(session, ["/reset", "/nope"], write=print, notice=notices.append)
    assert session.messages == [] and "cleared" in notices[0]
    assert notices[1].startswith("unknown command '/nope'") and text in notices[1]


# ------------------------------------------------------------------- streaming
def test_streamable_holds_back_only_what_may_still_change():
    stops = ("\nUser:",)
    assert streamable(" I can't ", stops) == "I can't"  # stripped like the final answer
    assert streamable(" Hello.\nUs", stops) == "Hello."  # may become the stop string
    assert streamable(" Hello.\nUser: more", stops) == "Hello."  # cut like the final answer
    assert streamable(" caf\ufffd", stops) == "caf"  # half a character
    assert streamable("   ", stops) == "" and streamable("", ()) == ""
    assert streamable(" a\nU b", stops) == "a\nU b"  # a stop string's start mid-text stays


def test_streamed_pieces_join_up_to_exactly_the_final_answer():
    out: list[str] = []
    stream = AnswerStream(out.append, stop_strings=("\nUser:",), columns=lambda: 80)
    stream.begin()
    for text in ["", " I", " I ", " I can't", " I can't help with that.\nUs",
                 " I can't help with that.\nUser: next"]:
        stream(event(text))
    stream.finish("I can't help with that.")
    assert out == ["rain> ", "I", " can't", " help with that.", "\n\n"]
    assert "".join(out) == f"rain> {REFUSAL}\n\n"


def test_a_final_answer_that_does_not_extend_the_stream_is_printed_whole():
    out: list[str] = []
    stream = AnswerStream(out.append)
    stream.begin()
    stream(event(" don 't"))
    stream.finish("don't")  # a tokenizer that decodes the prefix differently
    assert "".join(out) == "rain> don 't\nrain> don't\n\n"
    out.clear()
    stream.begin()
    stream(event(" I"))
    stream.finish(None)  # interrupted: the line ends, nothing more
    assert "".join(out) == "rain> I\n"


def test_chat_streams_each_commit_as_it_happens():
    out: list[str] = []
    session = searching_session()
    n = run_chat(session, [PROMPT], write=pytest.fail, notice=print,
                 stream=AnswerStream(out.append))
    assert n == 1
    assert out == ["rain> ", "I", " can't help", " with that.", "\n\n"]
    assert "".join(out) == f"rain> {REFUSAL}\n\n"
    assert session.messages[-1]["content"] == REFUSAL


def test_the_budget_note_follows_a_streamed_answer():
    out: list[str] = []
    notices: list[str] = []
    session = searching_session(max_total_searches=1)
    run_chat(session, [PROMPT], write=pytest.fail, notice=notices.append,
             stream=AnswerStream(out.append))
    answer = session.messages[-1]["content"]
    assert "".join(out) == f"rain> {answer}\n\n" and answer
    assert any("budget ran out" in n for n in notices), notices


# ------------------------------------------------------------- the inline status
def test_inline_status_never_moves_the_cursor_and_is_erased_before_text():
    err = Recorder()
    out: list[str] = []
    status = InlineStatus(True, err, clock=lambda: 100.0, tick_interval_s=3600.0)
    stream = AnswerStream(lambda s: (out.append(s), err.write(f"<out:{s}>")), status=status,
                          columns=lambda: 80)
    stream.begin()
    stream(event(" I", steps=1, searches=4, elapsed=2.5))
    stream.finish("I")
    drawn = "".join(err.writes)
    status_draw = "\x1b7\x1b[?7l\x1b[2m  [2.5s · 4 searches · 1 steps]\x1b[0m\x1b[?7h\x1b8"
    assert drawn == f"<out:rain> ><out:I>{status_draw}\x1b[K<out:\n\n>"


def test_inline_status_is_not_drawn_where_the_line_has_no_room():
    err = Recorder()
    status = InlineStatus(True, err, clock=lambda: 100.0, tick_interval_s=3600.0)
    stream = AnswerStream(lambda s: None, status=status, columns=lambda: 10 + MIN_ROOM)
    stream.begin()
    stream(event(" " + "x" * (4 + MIN_ROOM), steps=1))  # the line is exactly full
    assert status.room == 0 and err.writes == []
    stream(event(" " + "x" * (4 + MIN_ROOM) + "\nok", steps=2))  # a new line
    assert status.room == 10 + MIN_ROOM - 2
    shown = "  [0.0s · 1 searches · 2 steps]"[: status.room - 1]  # cut: it never wraps
    assert err.writes == [f"\x1b7\x1b[?7l\x1b[2m{shown}\x1b[0m\x1b[?7h\x1b8"]
    stream.finish("x")
    assert status._ticker is None


# ------------------------------------------------------------ the ticking clock
ELAPSED = re.compile(r"\[(\d+\.\d)s")


def test_the_clock_ticks_while_a_search_pass_is_stuck():
    """A judge call blocks in the middle of a pass: no progress event can come, yet the
    status keeps redrawing with the (injected) clock moved on."""
    now = [1000.0]
    entered, release = threading.Event(), threading.Event()

    def blocking_script(answer):
        if answer and answer[-1] == CUE and not entered.is_set():
            entered.set()
            assert release.wait(WAIT_S)
        return script(answer)

    session = searching_session(ScriptedBackend(VOCAB, blocking_script, name="stuck"))
    err = Recorder()
    out: list[str] = []
    status = InlineStatus(True, err, clock=lambda: now[0], tick_interval_s=0.005)
    stream = AnswerStream(out.append, status=status, columns=lambda: 80)
    turn = threading.Thread(target=run_chat, args=(session, [PROMPT]),
                            kwargs=dict(write=pytest.fail, notice=print, stream=stream))
    turn.start()
    try:
        assert entered.wait(WAIT_S), "the search never called the judge"
        now[0] += 7.0  # seven seconds pass inside the stuck model call
        seconds = err.wait_for(lambda s: (m := ELAPSED.search(s)) and float(m.group(1)) >= 7.0)
        assert seconds
    finally:
        release.set()
        turn.join(WAIT_S)
    assert not turn.is_alive()
    assert "".join(out) == f"rain> {REFUSAL}\n\n"
    assert status._ticker is None  # stopped with the turn


def test_progress_line_ticks_between_events_and_stops():
    now = [50.0]
    err = Recorder()
    line = ProgressLine(True, err, clock=lambda: now[0], tick_interval_s=0.001)
    line.start_ticking()
    try:
        err.wait_for(lambda s: "0.0s" in s)  # before any event: the turn's own clock
        line(event(" Hi", steps=1, searches=3, elapsed=1.5))
        now[0] += 2.0
        err.wait_for(lambda s: "3.5s" in s and "searches    3" in s and "Hi" in s)
    finally:
        line.stop_ticking()
    count = len(err.writes)
    line.clear()
    assert err.writes[count:] == ["\r\x1b[2K"] and line._ticker is None


class CountingLine(ProgressLine):
    """A progress line that counts when its clock starts and stops ticking."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def start_ticking(self) -> None:
        self.calls.append("start")
        super().start_ticking()

    def stop_ticking(self) -> None:
        self.calls.append("stop")
        super().stop_ticking()


def test_non_streaming_chat_ticks_during_each_answer_and_clears_its_line():
    err = Recorder()
    line = CountingLine(True, err, tick_interval_s=3600.0)
    answers: list[str] = []
    session = ChatSession(make_backend(), run_options(embedder="none", max_new_tokens=12),
                          on_progress=line)
    run_chat(session, [PROMPT, "/help", PROMPT], write=answers.append, notice=print,
             progress=line)
    assert answers == [REFUSAL, REFUSAL] and line.calls == ["start", "stop"] * 2
    assert err.writes[-1] == "\r\x1b[2K" and line._ticker is None


# ------------------------------------------------------------- line editing
def test_readline_is_imported_only_when_a_terminal_chat_starts():
    code = ("import sys, io, rainlm.cli.main\n"
            "from rainlm.cli.chat import _input_lines\n"
            "list(_input_lines(io.StringIO('hi\\n'), False))\n"
            "print('readline' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=WAIT_S)
    assert done.stdout.strip() == "False", done.stderr


def test_chat_works_where_readline_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "readline", None)  # import readline -> ImportError
    assert _line_editing() is False
    typed = iter(["hello", "/quit"])

    def fake_input(prompt: str) -> str:
        assert prompt == "you> "
        for line in typed:
            return line
        raise EOFError

    monkeypatch.setattr("builtins.input", fake_input)
    assert list(_input_lines(sys.stdin, True)) == ["hello", "/quit"]


# ------------------------------------------------------- on a pseudo-terminal
needs_pty = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")

CHILD = ("from tests.cli.test_cli_scripted import services\n"
         "from rainlm.cli.main import cli\n"
         "import sys\n"
         "cli.main(args=['chat', *sys.argv[1:]], obj=services(), prog_name='rain')\n")


class Terminal:
    """``rain chat`` (scripted model) in a child process on a pseudo-terminal."""

    def __init__(self, *args: str):
        import pty

        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, "--embedder", "hashing", "--max-new-tokens", "12",
             *args], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
            close_fds=True)
        os.close(slave)
        self.output = b""

    def read_until(self, expected: bytes, timeout: float = WAIT_S) -> bytes:
        """Everything read after ``start`` up to and including ``expected``."""
        start = len(self.output)
        deadline = time.monotonic() + timeout
        while expected not in self.output[start:]:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"{expected!r} never came; got {self.output!r}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"{expected!r} never came; got {self.output!r}")
            self.output += chunk
        end = self.output.index(expected, start) + len(expected)
        return self.output[start:end]

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int:
        """EOF (Ctrl-D) and the exit status."""
        self.type(b"\x04")
        try:
            return self.proc.wait(WAIT_S)
        finally:
            os.close(self.master)


def screen_text(raw: bytes) -> str:
    """What stays on the screen: the inline status (drawn between a saved and restored
    cursor, then erased) and the readline's terminal-mode switches taken out."""
    text = raw.decode()
    text = re.sub(r"\x1b7.*?\x1b8", "", text, flags=re.S)
    return re.sub(r"\x1b\[(K|\?\d+[hl])", "", text).replace("\r", "")


@needs_pty
def test_terminal_history_recalls_the_last_line_and_answers_stream(tmp_path):
    from rainlm.trace.store import TraceStore

    db = tmp_path / "chat.sqlite3"
    term = Terminal("--db", str(db))
    try:
        term.read_until(b"you> ")
        term.type(PROMPT.encode() + b"\r")
        first = term.read_until(b"you> ")
        assert f"rain> {REFUSAL}\n\nyou> " in screen_text(first)
        assert b"\x1b7" in first  # the status was drawn on the answer's line
        term.type(b"\x1b[A")  # Up: the last line comes back, ready to edit
        assert term.read_until(PROMPT.encode())
        term.type(b"\r")
        second = term.read_until(b"you> ")
        assert f"rain> {REFUSAL}\n\nyou> " in screen_text(second)
        assert b"^[[A" not in term.output
        term.type(b"/help\r")
        assert "/reset" in screen_text(term.read_until(b"you> "))
    finally:
        status = term.close()
    assert status == 0, term.output
    with TraceStore(db) as store:
        turns = [r.request["messages"] for r in store.list(limit=10)]
    users = sorted([m["content"] for m in t if m["role"] == "user"] for t in turns)
    assert users == [[PROMPT], [PROMPT, PROMPT]]  # the recalled line was sent again


@needs_pty
def test_terminal_without_progress_shows_just_the_answers():
    term = Terminal("--no-progress")
    try:
        term.read_until(b"you> ")
        term.type(b"Hello\r")
        raw = term.read_until(b"you> ")
    finally:
        status = term.close()
    assert status == 0
    assert b"\x1b7" not in raw and re.search(r"\nrain> \S.*\n\nyou> $", screen_text(raw))
