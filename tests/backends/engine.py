"""A private llama-cpp-python OpenAI-compatible server for tests (real, on 127.0.0.1).

``EngineServer`` starts ``python -m llama_cpp.server`` on the embedded GGUF on a free
port as a subprocess, waits until ``GET /v1/models`` answers, and always stops it
(context manager / ``stop()``); ``kill()`` is the fault test's "engine died" (SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["ENGINE_INSTALL", "EngineServer", "free_port", "llama_server_importable"]

ENGINE_INSTALL = ("run scripts/setup --engines (or pip install 'rainlm[engine]'), or set "
                  "RAINLM_ENGINE_URL to a running server's /v1 URL (scripts/engine_server start)")
"""How to get the engine the HTTP backend's tests drive (the message of a missing one)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llama_server_importable() -> bool:
    """Whether ``llama_cpp.server`` (and its fastapi/uvicorn extras) imports, checked in a
    subprocess so the test process does not load libllama."""
    try:
        done = subprocess.run([sys.executable, "-c", "import llama_cpp.server"],
                              capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class EngineServer:
    """``python -m llama_cpp.server`` on one model, on 127.0.0.1, one thread."""

    def __init__(self, model: str | os.PathLike | None = None, *, port: int | None = None,
                 n_ctx: int = 4096, threads: int = 1, extra_args: tuple[str, ...] = ()):
        if model is None:
            from rainlm.backends.embedded import embedded_model_path

            model = embedded_model_path()
        self.model = str(model)
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.threads = threads
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 60.0) -> str:
        """Start the server and wait until it answers; returns its base URL."""
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", self.model,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
               "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
               "--verbose", "False", *self.extra_args]
        fd, name = tempfile.mkstemp(prefix="rainlm-engine-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads))
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"llama_cpp.server exited with {self.proc.returncode} "
                                   f"before answering:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return self.base_url
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout_s} s:\n{tail}")

    def log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the server process (the engine dies mid-request)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> EngineServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
