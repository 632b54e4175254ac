"""``RoundRobinFront``: a tiny round-robin TCP (layer-4) front for several replicas.

What a Kubernetes Service does through kube-proxy: each client connection accepted goes
to the next upstream in turn, and its bytes are piped both ways, unread, until either
side closes. Pure asyncio streams, no third-party dependency::

    python -m rainlm.cluster.front --listen 127.0.0.1:8000 \\
        --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002

An upstream that refuses the connection (or does not answer within
``connect_timeout_s``) is marked down for ``down_for_s`` seconds and the next one is
tried: the client has sent nothing anywhere yet, so this is safe. With every upstream
down the client's connection is closed. Once bytes went to an upstream, the connection
belongs to it: if the upstream dies, the client's connection is closed (reset when the
upstream's was), never replayed on another replica, which could run a request twice.
An upstream that closes its side ends the client's connection; a client that closes its
side (a half-close) still gets the rest of the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["FrontThread", "RoundRobinFront", "main"]

_CHUNK = 64 * 1024


def _key(host: str, port: int) -> str:
    """``host:port`` (``[host]:port`` for an IPv6 address), the counters' key."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s connection with a reset (RST), so the peer sees an error, not a
    clean end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of stream (an error propagates)."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()


@dataclass
class _Upstream:
    host: str
    port: int
    down_until: float = 0.0
    """``time.monotonic()`` before which it is skipped (0: up)."""

    @property
    def key(self) -> str:
        return _key(self.host, self.port)


class RoundRobinFront:
    """Accept on ``host:port`` (port 0: a free one) and spread connections over
    ``upstreams`` in turn, skipping those that recently refused.

    Counters (read them from any thread): :attr:`connections_per_upstream`
    (``"host:port"`` → connections piped to it) and :attr:`failed_connects`.
    """

    def __init__(self, upstreams: list[tuple[str, int]], *, host: str = "127.0.0.1",
                 port: int = 0, connect_timeout_s: float = 2.0,
                 down_for_s: float = 5.0) -> None:
        if not upstreams:
            raise ValueError("RoundRobinFront needs at least one upstream (host, port)")
        self._upstreams = [_Upstream(str(h), int(p)) for h, p in upstreams]
        self._host, self._port = host, port
        self._connect_timeout_s, self._down_for_s = connect_timeout_s, down_for_s
        self._next = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.connections_per_upstream: dict[str, int] = {u.key: 0 for u in self._upstreams}
        """``"host:port"`` → how many client connections went to that upstream."""
        self.failed_connects = 0
        """How many connections to an upstream failed (refused or timed out)."""

    @property
    def upstreams(self) -> list[tuple[str, int]]:
        """The upstreams, in their turn order."""
        return [(u.host, u.port) for u in self._upstreams]

    @property
    def port(self) -> int:
        """The port it listens on (the bound one, once started)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` of the front (for HTTP upstreams)."""
        return f"http://{_key(self._host, self.port)}"

    async def start(self) -> None:
        """Bind and start accepting (in the running event loop). OSError if the address
        cannot be bound."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accepted, self._host,
                                                      self._port)

    async def close(self) -> None:
        """Stop accepting and cut every connection in progress."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def run_in_thread(self) -> FrontThread:
        """Start the front on an event loop of its own in a daemon thread (for sync
        code: tests, benchmarks, the launcher); ``.stop()`` the result when done."""
        return FrontThread.start(self)

    # ------------------------------------------------------------------ connections
    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A connection to the next upstream that takes one, or None if none does."""
        count = len(self._upstreams)
        for step in range(count):
            index = (self._next + step) % count
            upstream = self._upstreams[index]
            if upstream.down_until > time.monotonic():
                continue
            try:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(upstream.host, upstream.port),
                    self._connect_timeout_s)
            except (OSError, asyncio.TimeoutError):
                self.failed_connects += 1
                upstream.down_until = time.monotonic() + self._down_for_s
                continue
            self._next = (index + 1) % count
            self.connections_per_upstream[upstream.key] += 1
            return streams
        return None

    async def _serve(self, client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        """Pipe one client connection to an upstream and back."""
        upstream = None
        try:
            upstream = await self._connect()
            if upstream is None:  # every upstream down: nothing to offer
                _reset(client_writer)
                return
            up_reader, up_writer = upstream
            to_client = asyncio.create_task(_pipe(up_reader, client_writer))
            to_upstream = asyncio.create_task(self._client_to_upstream(client_reader,
                                                                       up_writer))
            try:
                done, _ = await asyncio.wait({to_client, to_upstream},
                                             return_when=asyncio.FIRST_COMPLETED)
                if to_client not in done and to_upstream.exception() is None:
                    await to_client  # the client half-closed: the answer still comes back
                elif to_client not in done:
                    raise to_upstream.exception()  # type: ignore[misc]
                else:
                    to_client.result()  # raises when the upstream reset
            finally:
                for task in (to_client, to_upstream):
                    task.cancel()
                await asyncio.gather(to_client, to_upstream, return_exceptions=True)
        except (OSError, asyncio.IncompleteReadError):  # a side died: the other sees it too
            _reset(client_writer)
            if upstream is not None:
                _reset(upstream[1])
        finally:
            for writer in (client_writer, *(upstream[1:] if upstream else ())):
                writer.close()

    @staticmethod
    async def _client_to_upstream(reader: asyncio.StreamReader,
                                  writer: asyncio.StreamWriter) -> None:
        """The client's bytes to the upstream; at the client's end of stream, a
        half-close of the upstream (so it still answers)."""
        await _pipe(reader, writer)
        if writer.can_write_eof():
            writer.write_eof()


@dataclass
class FrontThread:
    """A :class:`RoundRobinFront` serving on its own event loop in a daemon thread."""

    front: RoundRobinFront
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, front: RoundRobinFront) -> FrontThread:
        """Start ``front`` in a new thread; returns once it listens (or raises why not)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="rainlm-front", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(front.start(), loop).result(timeout=30)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
            raise
        return cls(front, loop, thread)

    @property
    def port(self) -> int:
        """The port the front listens on."""
        return self.front.port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the front's host and port)."""
        return self.front.url

    def stop(self) -> None:
        """Close the front, stop its loop and thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        try:
            asyncio.run_coroutine_threadsafe(self.front.close(), self.loop).result(timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            if not self.thread.is_alive():
                self.loop.close()

    def __enter__(self) -> FrontThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- command line
def _address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) → (host, port), or argparse's error."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:8001), "
                                         f"got {text!r}")
    return host, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rainlm.cluster.front",
        description="A round-robin TCP front: each connection goes to the next upstream.")
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 8000),
                        metavar="HOST:PORT", help="where to accept (default 127.0.0.1:8000)")
    parser.add_argument("--upstream", type=_address, action="append", required=True,
                        metavar="HOST:PORT", help="a replica (repeat, in turn order)")
    parser.add_argument("--connect-timeout", type=float, default=2.0, metavar="SECONDS",
                        help="give up connecting to an upstream after this (default 2)")
    parser.add_argument("--down-for", type=float, default=5.0, metavar="SECONDS",
                        help="skip an upstream that refused for this long (default 5)")
    return parser


async def _serve_until_signalled(front: RoundRobinFront) -> None:
    """Serve until SIGINT or SIGTERM, then close."""
    await front.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    targets = ", ".join(_key(h, p) for h, p in front.upstreams)
    print(f"front on {front.url} -> {targets}", flush=True)
    try:
        await stop.wait()
    finally:
        await front.close()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rainlm.cluster.front --listen H:P --upstream H:P [--upstream H:P ...]``."""
    parser = _parser()
    args = parser.parse_args(argv)
    front = RoundRobinFront(args.upstream, host=args.listen[0], port=args.listen[1],
                            connect_timeout_s=args.connect_timeout,
                            down_for_s=args.down_for)
    try:
        asyncio.run(_serve_until_signalled(front))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the listen address: taken, or not this machine's
        parser.exit(1, f"{parser.prog}: cannot listen on {_key(*args.listen)}: {exc} "
                       f"(pick another --listen HOST:PORT)\n")


if __name__ == "__main__":
    main()
