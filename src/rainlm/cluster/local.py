"""``LocalCluster``: the production layout, on one machine, for trying it and testing it.

One PostgreSQL (the shared audit trail and review queue), one serving engine
(llama-cpp-python's OpenAI-compatible server on the embedded GGUF), N ``rain serve``
replicas pointed at both, and a round-robin front (``rainlm.cluster.front``, layer 4
like kube-proxy), all on 127.0.0.1::

    with LocalCluster(replicas=2) as cluster:
        print(cluster.front_url)            # http://127.0.0.1:PORT: send requests here
        cluster.kill_replica(0)             # SIGKILL: the front skips it from now on
        cluster.restart_replica(0)          # same port: it marks its unfinished records

They start in that order (store, engine, replicas, front) and stop in reverse. Every
process started here is this object's own: stopped with SIGTERM, then SIGKILL after a
timeout; an engine or a store given by URL is never touched. The store's URL reaches the
replicas through ``$RAINLM_AUDIT_DB``, never their command line (which every user of the
machine can read); :meth:`LocalCluster.describe` shows it without the password.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from rainlm.cluster.postgres import free_port
from rainlm.errors import ConfigError, RainError
from rainlm.trace.location import (ENV_VAR, describe as describe_store, is_postgres_url,
                                    redact_url)

__all__ = ["LocalCluster", "DATABASE", "ENGINE_CACHE_ARGS", "ENGINE_INSTALL",
           "default_engine_threads"]

DATABASE = "rainlm"
"""The database made on a local PostgreSQL for the audit trail."""
ENGINE_INSTALL = ("install llama-cpp-python with its server (scripts/setup --engines, or "
                  "pip install 'rainlm[engine]'), or pass an engine's URL (engine_url= / "
                  "--engine-url http://HOST:PORT/v1)")
HOST = "127.0.0.1"
ENGINE_CACHE_ARGS = ("--cache", "True", "--cache_size", str(64 * 1024 * 1024))
"""The local engine's prompt cache. The fail-safe judge's prompt is a long rubric every
request shares, and without a cache llama-cpp-python's server keeps the KV of its last
prompt only, so each request's answer evicts it (measured on 2 busy CPU cores: ~8 s per
4-token request without it, ~2 s with it). Small on purpose: ``--cache_size`` counts
only the KV part of each state, and every state also holds its logits (tokens ×
vocabulary floats, ~9x the KV with SmolLM2): with 64 MiB the server stayed at ~1.3 GB
RSS over a dozen different requests, with the default 2 GiB it grew ~300 MB per request
(docs/engines.md, "llama.cpp")."""
_RESERVED = ("--port", "--store", "--db", "--backend", "--base-url")
"""``rain serve`` options the cluster sets itself (serve_args may not)."""
_TAIL_CHARS = 3000


def default_engine_threads() -> int:
    """Threads for the local engine: half the cores (1 on 2 cores: the replicas and the
    front need the other), at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _status(url: str, timeout_s: float = 2.0) -> int | None:
    """HTTP status of ``GET url`` (None: no answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _tail(path: Path | None, chars: int = _TAIL_CHARS) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass
class _Process:
    """A child process of ours, with its log."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(repr=False)  # holds the store URL, password included
    proc: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}: "
                        f"{' '.join(self.argv)}\n".encode())
        self._log.flush()
        # a session of its own: Ctrl-C in the terminal reaches the launcher only, which
        # then stops the tiers in order
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env,
                                     start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.proc is not None
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout_s: float) -> bool:
        """Whether it exited within ``timeout_s``."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, timeout_s: float) -> None:
        """SIGTERM, then SIGKILL when it has not exited after ``timeout_s``."""
        self.signal(signal.SIGTERM)
        self.finish(timeout_s)

    def finish(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for it to exit, then SIGKILL it; close the log."""
        if not self.wait(timeout_s):
            self.signal(signal.SIGKILL)
            self.wait(30)
        if self._log is not None:
            self._log.close()
            self._log = None


def _stop_all(processes: list[_Process], timeout_s: float) -> None:
    """SIGTERM every process at once, then wait for each (SIGKILL after ``timeout_s``).
    Module-level (no reference to the cluster), so it can be a finalizer."""
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        process.finish(timeout_s)


class LocalCluster:
    """PostgreSQL, an engine, ``replicas`` × ``rain serve`` and a round-robin front on
    127.0.0.1.

    Args:
        replicas: how many ``rain serve`` processes (at least 1).
        engine_url: an OpenAI-compatible engine's ``/v1`` URL to use; None: start
            llama-cpp-python's server on the embedded GGUF on a free port.
        store: a ``postgresql://`` URL to use; None: a local PostgreSQL (durable) in
            ``folder/postgres`` (kept), or in a temporary folder (removed by :meth:`stop`),
            with a database ``rainlm``.
        folder: where the local PostgreSQL and (by default) the logs live; None: temporary.
        front_port: the front's port (0: a free one).
        serve_args: more ``rain serve`` options for every replica (not --port, --store,
            --db, --backend or --base-url: the cluster sets those).
        log_dir: where ``engine.log`` and ``replica-K.log`` go; None: ``folder/logs``, or a
            temporary folder (removed by :meth:`stop` unless ``keep_logs``).
        keep_logs: keep the temporary log folder after :meth:`stop` (``rain cluster``).
        replica_ports: each replica's port (None: free ones). Fixed ports keep the
            replicas' identity (``rain serve@HOST:PORT``) from one start to the next, so
            a cluster started again on a kept store marks what the last one left
            unfinished.
        engine_threads: the local engine's threads (None: :func:`default_engine_threads`).
        engine_args: more ``llama_cpp.server`` options for the local engine (after
            the cluster's own: a repeated option overrides, e.g. ``("--cache", "False")``).
        ready_timeout_s: how long a replica may take to answer ``/health`` with 200.
        stop_timeout_s: how long a process may take to exit after SIGTERM before SIGKILL
            (a replica finishes its running searches for up to its --shutdown-timeout).
        progress: called with a line for people at each step of :meth:`start` (None: quiet).
    """

    def __init__(self, *, replicas: int = 2, engine_url: str | None = None,
                 store: str | None = None, folder: str | Path | None = None,
                 front_port: int = 0, serve_args: Sequence[str] = (),
                 log_dir: str | Path | None = None, engine_threads: int | None = None,
                 engine_args: Sequence[str] = (), keep_logs: bool = False,
                 replica_ports: Sequence[int] | None = None,
                 ready_timeout_s: float = 180.0, stop_timeout_s: float = 30.0,
                 progress: Callable[[str], None] | None = None) -> None:
        if not isinstance(replicas, int) or replicas < 1:
            raise ConfigError("replicas", f"must be an integer >= 1, got {replicas!r}")
        if not isinstance(front_port, int) or not 0 <= front_port <= 65535:
            raise ConfigError("front_port", f"must be an integer in [0, 65535] (0: a free "
                                            f"one), got {front_port!r}")
        if engine_url is not None and not engine_url.startswith(("http://", "https://")):
            raise ConfigError("engine_url", f"must be an http(s) URL such as "
                                            f"http://127.0.0.1:8012/v1, got {engine_url!r}")
        if store is not None and not is_postgres_url(store):
            raise ConfigError("store", f"must be a postgresql://USER:PASSWORD@HOST:PORT/DB "
                                       f"URL that every replica can reach (or none, for "
                                       f"a local PostgreSQL), got {redact_url(store)!r}")
        if replica_ports is not None and (
                len(replica_ports) != replicas or len(set(replica_ports)) != replicas
                or not all(isinstance(p, int) and 0 < p <= 65535 for p in replica_ports)):
            raise ConfigError("replica_ports", f"must be {replicas} different ports in "
                                               f"[1, 65535], got {list(replica_ports)!r}")
        if engine_threads is not None and engine_threads < 1:
            raise ConfigError("engine_threads", f"must be >= 1, got {engine_threads!r}")
        serve_args = [str(a) for a in serve_args]
        for arg in serve_args:
            if arg.split("=", 1)[0] in _RESERVED:
                raise ConfigError("serve_args", f"{arg.split('=', 1)[0]} is set by the "
                                                f"cluster itself, like "
                                                f"{', '.join(_RESERVED)}")
        self.replicas = replicas
        self.serve_args = tuple(serve_args)
        self.front_port = front_port
        self.engine_threads = engine_threads or default_engine_threads()
        self.engine_args = tuple(str(a) for a in engine_args)
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._progress = progress
        self._given_engine = engine_url.rstrip("/") if engine_url else None
        self._given_store = store
        self._folder = Path(folder).expanduser().resolve() if folder is not None else None
        self._given_log_dir = Path(log_dir).expanduser().resolve() if log_dir else None
        self._keep_logs = keep_logs
        self._given_ports = list(replica_ports) if replica_ports is not None else None

        self.engine_url: str | None = self._given_engine
        """The engine's ``/v1`` URL the replicas use (``--base-url``)."""
        self.store_url: str | None = store
        """The audit store's URL, password included (for programs; show people
        :func:`rainlm.trace.location.describe` of it)."""
        self.front_url: str | None = None
        """``http://127.0.0.1:PORT`` of the front: send requests here."""
        self.replica_ports: list[int] = []
        self.log_dir: Path | None = None
        self.postgres = None  # LocalPostgres, when ours
        self.front = None  # FrontThread
        self._engine: _Process | None = None
        self._replicas: list[_Process] = []
        self._processes: list[_Process] = []
        self._temporary: list[Path] = []
        self._started = False
        self._finalizer: weakref.finalize | None = None

    # ------------------------------------------------------------------ views
    @property
    def replica_urls(self) -> list[str]:
        """``http://127.0.0.1:PORT`` of each replica, in the front's turn order."""
        return [f"http://{HOST}:{port}" for port in self.replica_ports]

    @property
    def replica_processes(self) -> list[subprocess.Popen]:
        """Each replica's current process (a restarted one's new process)."""
        return [r.proc for r in self._replicas if r.proc is not None]

    @property
    def engine_process(self) -> subprocess.Popen | None:
        """The engine's process when this cluster started it (None: a given engine)."""
        return self._engine.proc if self._engine is not None else None

    def replica_log(self, index: int) -> Path:
        """Replica ``index``'s log file."""
        return self._replica(index).log_path

    @property
    def owners(self) -> list[str]:
        """The ``owner`` each replica writes on its records (``rain serve@HOST:PORT``)."""
        return [f"rain serve@{socket.gethostname()}:{port}" for port in self.replica_ports]

    def describe(self) -> list[str]:
        """What runs where, for people (the store without its password)."""
        if not self._started:
            return ["local cluster: not running"]
        lines = [f"front      {self.front_url}/v1   (round robin over {self.replicas} "
                 f"replica{'s' if self.replicas != 1 else ''}: send requests here)"]
        for index, (url, process) in enumerate(zip(self.replica_urls, self._replicas)):
            state = f"pid {process.pid}" if process.alive else "not running"
            lines.append(f"replica {index:<2} {url}   ({state}, log {process.log_path})")
        if self._engine is not None:
            lines.append(f"engine     {self.engine_url}   (llama.cpp server on the embedded "
                         f"model, {self.engine_threads} thread(s), pid {self._engine.pid}, "
                         f"log {self._engine.log_path})")
        else:
            lines.append(f"engine     {self.engine_url}   (given)")
        assert self.store_url is not None
        if self.postgres is not None:
            lines.append(f"store      {describe_store(self.store_url)}   (local PostgreSQL "
                         f"in {self.postgres.folder}; password in "
                         f"{self.postgres.folder / 'password'})")
        else:
            lines.append(f"store      {describe_store(self.store_url)}   (given)")
        lines.append(f"logs       {self.log_dir}")
        return lines

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCluster:
        """Start the store, the engine, the replicas and the front, each once the one
        before answers; returns self. On any failure everything started so far is
        stopped and RainError says why (with the log's last lines)."""
        if self._started:
            return self
        self._started = True
        processes: list[_Process] = []
        self._finalizer = weakref.finalize(self, _stop_all, processes, 10.0)
        self._processes = processes
        try:
            self.log_dir = self._make_log_dir()
            self._start_store()
            self._start_engine()
            self._start_replicas()
            self._start_front()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the front, the replicas, the engine and the store (only what this object
        started), in that order. Idempotent."""
        if not self._started:
            return
        self._started = False
        errors: list[str] = []
        front, self.front = self.front, None
        if front is not None:
            try:
                front.stop()
            except Exception as exc:  # noqa: BLE001 - the rest must still stop
                errors.append(f"the front: {exc}")
        _stop_all(self._replicas, self.stop_timeout_s)
        if self._engine is not None:
            self._engine.stop(self.stop_timeout_s)
        self._replicas, self._engine, self._processes = [], None, []
        postgres, self.postgres = self.postgres, None
        if postgres is not None:
            try:
                postgres.stop()
            except RainError as exc:
                errors.append(str(exc))
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        for folder in self._temporary:
            shutil.rmtree(folder, ignore_errors=True)
        self._temporary.clear()
        if errors:
            raise RainError("the local cluster did not stop cleanly: " + "; ".join(errors))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def kill_replica(self, index: int) -> int:
        """SIGKILL replica ``index`` (its in-flight requests fail; the front skips it
        from now on); returns the pid it had."""
        process = self._replica(index)
        if not process.alive:
            raise RainError(f"replica {index} is not running")
        pid = process.pid
        assert pid is not None
        process.signal(signal.SIGKILL)
        process.finish(30)
        return pid

    def restart_replica(self, index: int) -> int:
        """Start replica ``index`` again on the same port (stopping it first when it
        runs), so it marks the records it left "started" as "interrupted"; returns once
        ``/health`` answers 200, with the new pid."""
        process = self._replica(index)
        if process.alive:
            process.stop(self.stop_timeout_s)
        began = time.monotonic()
        process.start()
        self._wait_ready(index, process)
        self._say(f"replica {index} ready again at {self.replica_urls[index]} in "
                  f"{time.monotonic() - began:.1f} s")
        assert process.pid is not None
        return process.pid

    # ------------------------------------------------------------------ the steps
    def _say(self, line: str) -> None:
        if self._progress is not None:
            self._progress(line)

    def _replica(self, index: int) -> _Process:
        if not self._started or not self._replicas:
            raise RainError("the local cluster is not running: call start() first")
        if not isinstance(index, int) or not 0 <= index < len(self._replicas):
            raise ConfigError("index", f"must be a replica number in [0, "
                                       f"{len(self._replicas) - 1}], got {index!r}")
        return self._replicas[index]

    def _make_log_dir(self) -> Path:
        if self._given_log_dir is not None:
            folder = self._given_log_dir
        elif self._folder is not None:
            folder = self._folder / "logs"
        else:
            folder = Path(tempfile.mkdtemp(prefix="rainlm-cluster-"))
            if not self._keep_logs:
                self._temporary.append(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _start_store(self) -> None:
        if self._given_store is not None:
            self.store_url = self._given_store
            self._say(f"store: {describe_store(self.store_url)} (given)")
            return
        from rainlm.cluster.postgres import LocalPostgres

        began = time.monotonic()
        where = self._folder / "postgres" if self._folder is not None else None
        self._say(f"starting PostgreSQL ({where or 'a temporary folder'})…")
        self.postgres = LocalPostgres(where, durable=True).start()
        try:
            self.store_url = self.postgres.create_database(DATABASE)
        except RainError as exc:
            if "already exists" not in str(exc):  # a kept folder: its database is there
                raise
            self.store_url = self.postgres.dsn(DATABASE)
        self._say(f"PostgreSQL ready on port {self.postgres.port} in "
                  f"{time.monotonic() - began:.1f} s")

    def _start_engine(self) -> None:
        began = time.monotonic()
        if self._given_engine is not None:
            self.engine_url = self._given_engine
            self._wait_engine(None, 30.0)
            self._say(f"engine: {self.engine_url} (given) answers")
            return
        if importlib.util.find_spec("llama_cpp") is None:
            raise RainError(f"no engine URL was given and llama-cpp-python is not "
                            f"installed: {ENGINE_INSTALL}")
        from rainlm.backends.embedded import embedded_model_path

        model = embedded_model_path()
        port = free_port(HOST)
        threads = str(self.engine_threads)
        self.engine_url = f"http://{HOST}:{port}/v1"
        assert self.log_dir is not None
        self._engine = _Process(
            "engine", [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                       "--host", HOST, "--port", str(port), "--n_ctx", "4096",
                       "--n_threads", threads, "--n_threads_batch", threads,
                       "--verbose", "False", *ENGINE_CACHE_ARGS, *self.engine_args],
            self.log_dir / "engine.log", {**os.environ, "OMP_NUM_THREADS": threads})
        self._say(f"starting the engine (llama.cpp server on {model.name}, {threads} "
                  f"thread(s))…")
        self._engine.start()
        self._processes.append(self._engine)
        self._wait_engine(self._engine, 120.0)
        self._say(f"engine ready at {self.engine_url} in {time.monotonic() - began:.1f} s")

    def _wait_engine(self, process: _Process | None, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if process is not None and not process.alive:
                raise RainError(f"the engine (llama_cpp.server) exited with "
                                f"{process.proc.returncode if process.proc else '?'} before "
                                f"answering; last lines of {process.log_path}:\n"
                                f"{_tail(process.log_path)}")
            if _status(f"{self.engine_url}/models") == 200:
                return
            if time.monotonic() > deadline:
                log = (f"; last lines of {process.log_path}:\n{_tail(process.log_path)}"
                       if process is not None else "")
                raise RainError(f"the engine at {self.engine_url} did not answer GET "
                                f"/models within {timeout_s:.0f} s{log}")
            time.sleep(0.25)

    def _replica_env(self) -> dict[str, str]:
        assert self.store_url is not None
        env = {**os.environ, ENV_VAR: self.store_url}
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def _start_replicas(self) -> None:
        assert self.log_dir is not None and self.engine_url is not None
        env = self._replica_env()
        began = time.monotonic()
        for port in self._given_ports or ():  # else /health may be another server's
            if not _port_free(port):
                raise RainError(f"port {port} on {HOST} is taken, so a replica cannot listen "
                                f"there: stop what uses it, or pick other ports")
        self.replica_ports = self._given_ports or [free_port(HOST) for _ in range(self.replicas)]
        self._say(f"starting {self.replicas} rain serve replica(s)…")
        for index, port in enumerate(self.replica_ports):
            process = _Process(
                f"replica {index}",
                [sys.executable, "-m", "rainlm.cli.main", "serve", "--port", str(port),
                 "--backend", "openai", "--base-url", self.engine_url, *self.serve_args],
                self.log_dir / f"replica-{index}.log", env)
            process.start()
            self._replicas.append(process)
            self._processes.append(process)
        for index, process in enumerate(self._replicas):
            self._wait_ready(index, process)
            self._say(f"replica {index} ready at {self.replica_urls[index]} in "
                      f"{time.monotonic() - began:.1f} s")

    def _wait_ready(self, index: int, process: _Process) -> None:
        url = f"{self.replica_urls[index]}/health"
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if not process.alive:
                code = process.proc.returncode if process.proc else "?"
                raise RainError(f"replica {index} (rain serve) exited with {code} before it "
                                f"was ready; last lines of {process.log_path}:\n"
                                f"{_tail(process.log_path)}")
            if _status(url) == 200:
                return
            if time.monotonic() > deadline:
                raise RainError(f"replica {index} answered no 200 on {url} within "
                                f"{self.ready_timeout_s:.0f} s; last lines of "
                                f"{process.log_path}:\n{_tail(process.log_path)}")
            time.sleep(0.25)

    def _start_front(self) -> None:
        from rainlm.cluster.front import RoundRobinFront

        front = RoundRobinFront([(HOST, port) for port in self.replica_ports], host=HOST,
                                port=self.front_port)
        try:
            self.front = front.run_in_thread()
        except OSError as exc:
            raise RainError(f"the front cannot listen on {HOST}:{self.front_port}: {exc} "
                            f"(pick another port, or 0 for a free one)") from exc
        self.front_url = self.front.url
        self._say(f"front ready at {self.front_url}")

    def __repr__(self) -> str:
        if not self._started:
            return f"LocalCluster(replicas={self.replicas}, stopped)"
        return f"LocalCluster(front {self.front_url}, {self.replicas} replicas)"
