"""The round-robin front against real servers on 127.0.0.1.

Upstreams are tiny ``http.server`` servers that answer their own name, and raw sockets
that misbehave on purpose (close or reset mid-answer, answer only after the client's
end of stream). Every client call has a timeout, and a timeout is a failure: a test
that expects a connection error checks it is not one.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rainlm.cluster.front import FrontThread, RoundRobinFront, main

TIMEOUT_S = 10.0
"""A client waiting this long means the front hangs: every test treats it as a failure."""
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ upstreams
class NamedServer:
    """An HTTP server on 127.0.0.1 (its own thread) whose every answer is its name."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.name = name
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = ("127.0.0.1", self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket: connections are refused."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(TIMEOUT_S)


class RawServer:
    """A TCP server on 127.0.0.1 that hands each connection to ``serve(conn)``."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", self.sock.getsockname()[1])
        self._serve = serve
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by stop()
                return
            with conn:
                conn.settimeout(TIMEOUT_S)
                self._serve(conn)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.sock.close()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive(), "the raw server's thread did not end"


def _read_request(conn: socket.socket) -> bytes:
    """The request's head (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _half_answer_then_close(conn: socket.socket) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly the start")


def _half_answer_then_reset(conn: socket.socket) -> None:
    _half_answer_then_close(conn)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _close_at_once(conn: socket.socket) -> None:
    _read_request(conn)


def _answer_after_end_of_stream(conn: socket.socket) -> None:
    data = b""
    while chunk := conn.recv(4096):  # until the client's half-close
        data += chunk
    conn.sendall(b"got " + data)


# ------------------------------------------------------------------ fixtures, helpers
@pytest.fixture()
def servers() -> Iterator[list[NamedServer]]:
    started = [NamedServer("a"), NamedServer("b")]
    yield started
    for server in started:
        server.stop()


@pytest.fixture()
def run_front() -> Iterator[Callable[..., tuple[RoundRobinFront, FrontThread]]]:
    """Start fronts in threads (``run_front(upstreams, **options)``); stopped after."""
    running: list[FrontThread] = []

    def start(upstreams: list[tuple[str, int]], **options: float):
        front = RoundRobinFront(upstreams, **options)
        running.append(front.run_in_thread())
        return front, running[-1]

    yield start
    for thread in running:
        thread.stop()


def get(port: int) -> str:
    """GET / through a new connection; the answer's body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def connection_error(port: int) -> Exception:
    """The error a GET through the front ends in; fails if it succeeds or times out."""
    with pytest.raises((http.client.HTTPException, OSError)) as raised:
        get(port)
    assert not isinstance(raised.value, TimeoutError), "the front hung the client"
    return raised.value


def _key(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


# ------------------------------------------------------------------ tests
def test_connections_go_to_the_upstreams_in_turn(servers, run_front):
    front, thread = run_front([s.address for s in servers])
    assert thread.url == f"http://127.0.0.1:{thread.port}" and thread.port > 0
    assert [get(thread.port) for _ in range(4)] == ["a", "b", "a", "b"]
    assert front.connections_per_upstream == {_key(s.address): 2 for s in servers}
    assert front.failed_connects == 0


def test_a_stopped_upstream_is_skipped(servers, run_front):
    front, thread = run_front([s.address for s in servers], down_for_s=60)
    assert get(thread.port) == "a"  # b is next in turn
    servers[1].stop()
    assert [get(thread.port) for _ in range(4)] == ["a"] * 4
    assert front.failed_connects >= 1
    assert front.connections_per_upstream == {_key(servers[0].address): 5,
                                              _key(servers[1].address): 0}


def test_with_every_upstream_down_the_client_connection_is_closed(run_front):
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        front, thread = run_front([bound.getsockname()], down_for_s=60)
        connection_error(thread.port)
        assert front.failed_connects == 1
        connection_error(thread.port)  # marked down: not even tried
        assert front.failed_connects == 1


@pytest.mark.parametrize("misbehave", [_half_answer_then_close, _half_answer_then_reset,
                                       _close_at_once])
def test_an_upstream_that_dies_mid_answer_is_a_client_error_not_a_retry(
        misbehave, servers, run_front):
    dying = RawServer(misbehave)
    try:
        front, thread = run_front([dying.address, servers[0].address])
        connection_error(thread.port)
        assert front.connections_per_upstream == {_key(dying.address): 1,
                                                  _key(servers[0].address): 0}
        assert get(thread.port) == "a"  # the next connection goes on in turn
    finally:
        dying.stop()


def test_a_client_half_close_still_gets_the_answer(run_front):
    echo = RawServer(_answer_after_end_of_stream)
    try:
        _, thread = run_front([echo.address])
        with socket.create_connection(("127.0.0.1", thread.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(b"hello")
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer == b"got hello"
    finally:
        echo.stop()


def test_stop_cuts_open_connections_and_is_idempotent(run_front):
    piped, ended, upstream_saw = threading.Event(), threading.Event(), []

    def never_answer(conn: socket.socket) -> None:
        conn.recv(4096)
        piped.set()
        try:
            upstream_saw.append(conn.recv(4096))  # the front's end of stream, once it stops
        except OSError as exc:  # a timeout: the front left the connection open
            upstream_saw.append(exc)
        ended.set()

    idle = RawServer(never_answer)
    try:
        front, thread = run_front([idle.address])
        with socket.create_connection(("127.0.0.1", thread.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n")
            assert piped.wait(TIMEOUT_S), "the front never piped the bytes upstream"
            thread.stop()
            thread.stop()
            assert sock.recv(4096) == b""  # closed by the front, not a timeout
        assert ended.wait(TIMEOUT_S + 5) and upstream_saw == [b""]  # both sides closed
        assert not thread.thread.is_alive()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", thread.port), timeout=TIMEOUT_S).close()
    finally:
        idle.stop()


def test_the_command_line_serves_until_sigterm(servers):
    upstreams = [arg for s in servers for arg in ("--upstream", _key(s.address))]
    process = subprocess.Popen(
        [sys.executable, "-m", "rainlm.cluster.front", "--listen", "127.0.0.1:0", *upstreams],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT_S)
        assert ready, "the front printed nothing"
        line = process.stdout.readline()  # printed once it listens
        assert line.startswith("front on http://127.0.0.1:"), line + process.stderr.read()
        assert line.rstrip().endswith(f"-> {_key(servers[0].address)}, "
                                      f"{_key(servers[1].address)}")
        port = int(line.split()[2].rsplit(":", 1)[1])
        assert [get(port), get(port)] == ["a", "b"]
        process.terminate()
        assert process.wait(TIMEOUT_S) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT_S)
        process.stdout.close()
        process.stderr.close()


def test_the_command_line_says_what_is_wrong(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--listen", "127.0.0.1:8000", "--upstream", "nohost"])
    assert exited.value.code == 2
    assert "expected HOST:PORT (e.g. 127.0.0.1:8001), got 'nohost'" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(SystemExit) as exited:
            main(["--listen", busy, "--upstream", "127.0.0.1:1"])
    assert exited.value.code == 1
    assert f"cannot listen on {busy}" in capsys.readouterr().err
