"""``LocalPostgres``: a throwaway PostgreSQL server in a folder of its own.

For tests, the local cluster and benchmarks: ``initdb`` makes a data directory in the
folder (one user, a random password, password auth over TCP, trust over the folder's
own Unix socket), ``pg_ctl`` starts the server on 127.0.0.1 and stops it again::

    with LocalPostgres(durable=False) as pg:
        dsn = pg.create_database("audit")   # postgresql://rainlm:...@127.0.0.1:PORT/audit

PostgreSQL refuses to run as root: under root the folder is handed to the ``postgres``
user and ``initdb`` / ``pg_ctl`` run as it (``runuser``, else ``su``). A server this
object started is stopped by :meth:`LocalPostgres.stop`, or at the latest when the
object is collected or the interpreter exits; a server it did not start is never
touched. ``psycopg`` is imported only by :meth:`~LocalPostgres.create_database` and
:meth:`~LocalPostgres.drop_database`.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import weakref
from pathlib import Path
from types import ModuleType, TracebackType
from urllib.parse import quote

from rainlm.errors import ConfigError, RainError

__all__ = ["LocalPostgres", "find_postgres_binaries"]

NAME_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A database or user name this module accepts (no quoting needed anywhere)."""
PSYCOPG_INSTALL = "pip install 'psycopg[binary]==3.3.6'"
SEARCH_DIRS = "/usr/lib/postgresql/*/bin"
"""Where Debian/Ubuntu put each PostgreSQL version's binaries (not on the PATH)."""
SERVER_USER = "postgres"
"""The user the server runs as when this process is root."""
_DATA, _LOG, _PASSWORD = "data", "server.log", "password"
_LOG_LINES = 20


def find_postgres_binaries() -> tuple[str, str]:
    """``(initdb, pg_ctl)``: on the PATH, else in the newest ``/usr/lib/postgresql/*/bin``.

    Raises RainError when neither place has both.
    """
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl

    def version(folder: str) -> tuple[int, ...]:
        name = Path(folder).parent.name
        return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)

    for folder in sorted(glob.glob(SEARCH_DIRS), key=version, reverse=True):
        initdb, pg_ctl = os.path.join(folder, "initdb"), os.path.join(folder, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    raise RainError(
        f"PostgreSQL's initdb and pg_ctl were not found on the PATH or in {SEARCH_DIRS}: "
        "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or point --store "
        "at your own server's postgresql:// URL")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the kernel's pick; free, not reserved)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _import_psycopg() -> ModuleType:
    """psycopg, or a RainError that says how to install it."""
    try:
        import psycopg
    except ImportError as exc:
        raise RainError(f"the PostgreSQL driver psycopg is not installed ({exc}): "
                        f"{PSYCOPG_INSTALL}") from exc
    return psycopg


def _check_name(kind: str, name: str) -> str:
    """``name`` when it is a plain lower-case SQL name, else ConfigError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(kind, f"must match {NAME_PATTERN.pattern} (lower-case letters, "
                                f"digits and _, not starting with a digit), got {name!r}")
    return name


def _runner() -> list[str]:
    """The prefix that runs a command as the server's user: none unless we are root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SERVER_USER, "--"]
    su = shutil.which("su")
    if su:
        return [su, "-s", "/bin/sh", SERVER_USER, "-c"]  # the command follows as one word
    raise RainError("running as root, and neither runuser nor su was found to run "
                    f"PostgreSQL as the {SERVER_USER!r} user: install util-linux, or run "
                    "as a normal user")


def _run(runner: list[str], command: list[str], *, cwd: Path,
         timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``command`` run through ``runner`` (see :func:`_runner`), its output captured."""
    if runner and not runner[-1].endswith("--"):  # su -c takes a single shell word
        argv = [*runner, shlex.join(command)]
    else:
        argv = [*runner, *command]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def _log_tail(log: Path, lines: int = _LOG_LINES) -> str:
    """The last ``lines`` lines of the server log ('' when there is none)."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _shutdown(pg_ctl: str, runner: list[str], folder: Path,
              remove: bool) -> None:
    """Stop the server whose data directory is in ``folder``; remove ``folder`` when
    ``remove``. Module-level (no reference to the object) so it can be a finalizer."""
    data = folder / _DATA
    try:
        result = _run(runner, [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                      cwd=folder, timeout_s=90)
        if result.returncode != 0:
            status = _run(runner, [pg_ctl, "-D", str(data), "status"], cwd=folder,
                          timeout_s=30)
            if status.returncode == 0:  # still running: say so (an already-dead one is fine)
                raise RainError(f"could not stop the PostgreSQL server in {data}: "
                                f"{(result.stderr or result.stdout).strip()}")
    finally:
        if remove:
            shutil.rmtree(folder, ignore_errors=True)


class LocalPostgres:
    """A PostgreSQL server of our own, on 127.0.0.1, in ``folder``.

    ``folder=None``: a fresh temporary folder (``rainlm-pg-*``), removed by :meth:`stop`.
    A given folder is kept; when it already holds a data directory made here, that one
    is started again (same user and password). ``port=0`` picks a free port.
    ``durable=False`` turns off fsync, synchronous commit and full-page writes: fast for
    tests, and a crash of the machine may lose or corrupt the data.
    """

    def __init__(self, folder: str | Path | None = None, *, port: int = 0,
                 durable: bool = True, user: str = "rainlm") -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("port", f"must be an integer in [0, 65535] (0: pick a free "
                                      f"one), got {port!r}")
        self._given = Path(folder).resolve() if folder is not None else None
        self._requested_port = port
        self._durable = durable
        self._user = _check_name("user", user)
        self._folder: Path | None = None
        self._port: int | None = None
        self._password: str | None = None
        self._finalizer: weakref.finalize | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalPostgres:
        """Make the data directory if needed and start the server; returns self.

        Raises RainError when PostgreSQL is not installed, or the server does not start
        (the message ends with the server log's last lines). Starting twice is a no-op.
        """
        if self.running:
            return self
        initdb, pg_ctl = find_postgres_binaries()
        runner = _runner()
        temporary = self._given is None
        folder = Path(tempfile.mkdtemp(prefix="rainlm-pg-")) if temporary else self._given
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if runner:
                self._hand_over(folder, runner)
            if (folder / _DATA / "PG_VERSION").exists():
                password = self._saved_password(folder)
            else:
                password = self._initdb(initdb, runner, folder)
            port = self._start_server(pg_ctl, runner, folder)
        except BaseException:
            if temporary:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        self._folder, self._port, self._password = folder, port, password
        self._finalizer = weakref.finalize(self, _shutdown, pg_ctl, runner, folder, temporary)
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the temporary folder, if one was
        made. Idempotent; a no-op when never started."""
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer()  # runs _shutdown once (and no longer at exit)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ what it offers
    @property
    def running(self) -> bool:
        """Whether this object started a server that it has not stopped yet."""
        return self._finalizer is not None and self._finalizer.alive

    @property
    def folder(self) -> Path:
        """The folder that holds the data directory (``data``) and the log (``server.log``)."""
        self._require_running()
        assert self._folder is not None
        return self._folder

    @property
    def port(self) -> int:
        """The TCP port the server listens on, on 127.0.0.1."""
        self._require_running()
        assert self._port is not None
        return self._port

    @property
    def password(self) -> str:
        """The password of :attr:`user` (required over TCP)."""
        self._require_running()
        assert self._password is not None
        return self._password

    @property
    def user(self) -> str:
        """The database superuser's name."""
        return self._user

    def dsn(self, dbname: str = "postgres") -> str:
        """``postgresql://USER:PASSWORD@127.0.0.1:PORT/DBNAME``."""
        return (f"postgresql://{self._user}:{quote(self.password, safe='')}"
                f"@127.0.0.1:{self.port}/{quote(dbname, safe='')}")

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; returns its DSN. Needs psycopg."""
        self._admin(f"CREATE DATABASE {_check_name('database name', name)}",
                    f"creating the database {name!r}")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name``, closing its connections first. Needs psycopg."""
        self._admin(f"DROP DATABASE IF EXISTS {_check_name('database name', name)} "
                    "WITH (FORCE)", f"dropping the database {name!r}")

    def __repr__(self) -> str:
        where = f"port {self._port}, {self._folder}" if self.running else "stopped"
        return f"LocalPostgres({where})"

    # ------------------------------------------------------------------ the steps
    def _require_running(self) -> None:
        if not self.running:
            raise RainError("this LocalPostgres is not running: call start() first (or use "
                            "it as a context manager: with LocalPostgres() as pg: ...)")

    def _admin(self, statement: str, doing: str) -> None:
        """Run ``statement`` (one that cannot run in a transaction) on ``postgres``;
        ``doing`` names it in the error."""
        psycopg = _import_psycopg()
        try:
            with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise RainError(f"{doing} failed on the local PostgreSQL (port {self.port}): "
                            f"{str(exc).strip()}") from exc

    @staticmethod
    def _hand_over(folder: Path, runner: list[str]) -> None:
        """Under root: give ``folder`` to the server's user, and check it can reach it."""
        import pwd

        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise RainError(f"running as root, PostgreSQL must run as another user, and "
                            f"there is no {SERVER_USER!r} user: create it (useradd --system "
                            f"{SERVER_USER}) or run as a normal user") from None
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        if _run(runner, ["test", "-w", str(folder)], cwd=Path("/"), timeout_s=30).returncode:
            raise RainError(f"the {SERVER_USER!r} user cannot write to {folder} (a folder "
                            f"above it is closed to other users): pass a folder it can "
                            f"reach, e.g. under /tmp, or none for a temporary one")

    def _saved_password(self, folder: Path) -> str:
        """The password of a data directory made earlier by this class in ``folder``."""
        try:
            return (folder / _PASSWORD).read_text().strip()
        except OSError:
            raise RainError(f"{folder / _DATA} holds a PostgreSQL data directory without "
                            f"the password file {folder / _PASSWORD} that LocalPostgres "
                            f"writes: it was not made here; pass another folder, or delete "
                            f"{folder / _DATA} to start afresh") from None

    def _initdb(self, initdb: str, runner: list[str], folder: Path) -> str:
        """A new data directory in ``folder``; returns the user's new password."""
        password = secrets.token_urlsafe(18)
        pwfile = folder / "initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        try:
            if runner:
                shutil.chown(pwfile, SERVER_USER)
            command = [initdb, "-D", str(folder / _DATA), "-U", self._user,
                       f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                       "--auth-local=trust", "-E", "UTF8", "--locale=C"]
            if not self._durable:
                command.append("--no-sync")
            result = _run(runner, command, cwd=folder, timeout_s=300)
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RainError(f"initdb failed in {folder / _DATA} (exit {result.returncode}):\n"
                            f"{(result.stderr or result.stdout).strip()}")
        saved = os.open(folder / _PASSWORD, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(saved, "w") as handle:  # for a later start of this same folder
            handle.write(password + "\n")
        return password

    def _start_server(self, pg_ctl: str, runner: list[str], folder: Path) -> int:
        """Start the server; returns its port. A port picked here that another process
        took meanwhile is picked again (up to 3 tries)."""
        data, log = folder / _DATA, folder / _LOG
        if _run(runner, [pg_ctl, "-D", str(data), "status"], cwd=folder,
                timeout_s=30).returncode == 0:
            raise RainError(f"a PostgreSQL server is already running in {data}: stop it "
                            f"first (pg_ctl -D {data} stop), or pass another folder")
        for attempt in range(3):
            port = self._requested_port or free_port()
            settings = {"listen_addresses": "127.0.0.1", "port": str(port),
                        "unix_socket_directories": str(folder), "max_connections": "200"}
            if not self._durable:
                settings |= {"fsync": "off", "synchronous_commit": "off",
                             "full_page_writes": "off"}
            options = " ".join(f"-c {shlex.quote(f'{key}={value}')}"
                               for key, value in settings.items())
            log_start = log.stat().st_size if log.exists() else 0
            result = _run(runner, [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                   "-o", options, "start"], cwd=folder, timeout_s=90)
            if result.returncode == 0:
                return port
            # ours (none ran here before): one half-started (timed out) must not outlive us
            _run(runner, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                 cwd=folder, timeout_s=60)
            tail = _log_tail(log)
            fresh = (log.read_bytes()[log_start:].decode(errors="replace")
                     if log.exists() else "")
            if self._requested_port == 0 and "Address already in use" in fresh and attempt < 2:
                continue
            break
        where = f"port {port}" + (" (it is taken: pick another, or 0 for a free one)"
                                  if "Address already in use" in tail else "")
        raise RainError(f"the local PostgreSQL server in {data} did not start on {where} "
                        f"(pg_ctl exit {result.returncode}: "
                        f"{(result.stderr or result.stdout).strip()}).\n"
                        f"Last lines of {log}:\n{tail or '(empty)'}")
