"""Start a real ``rain serve`` subprocess on a free 127.0.0.1 port (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

RAIN = Path(sys.executable).with_name("rain")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    """``http://127.0.0.1:PORT``."""
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_server(args: Sequence[str], log_path: Path, *, timeout_s: float = 180.0,
                   env: dict[str, str] | None = None, port: int | None = None) -> Iterator[Server]:
    """``rain serve --port P ARGS`` (P: ``port``, else a free one); yields once ``/health``
    says "ok"; always terminates."""
    import httpx

    port = port or free_port()
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                **(env or {})}
    full_env.pop("RAINLM_API_KEY", None)
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(RAIN), "serve", "--port", str(port), *args],
                                stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"rain serve exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{server.url}/health", timeout=2).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rain serve not ready after {timeout_s} s:\n{server.log()}")
            time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
