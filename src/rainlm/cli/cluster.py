"""``rain cluster``: the production layout on this machine (``rainlm.cluster.local``).

PostgreSQL, a serving engine, N ``rain serve`` replicas and a round-robin front, all on
127.0.0.1, until Ctrl-C or SIGTERM; then everything stops, front first.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

__all__ = ["cluster_command"]

EPILOG = """\b
What runs (all on 127.0.0.1, each process logging to the log folder):
  PostgreSQL           the shared audit trail and review queue (or --store URL)
  engine               llama.cpp's OpenAI-compatible server on the embedded model
                       (or --engine-url URL: vLLM, SGLang, llama.cpp server)
  rain serve x N       stateless replicas: --backend openai --base-url ENGINE; the store
                       reaches them as $RAINLM_AUDIT_DB, never on a command line
  front                round robin over the replicas, one connection at a time (like
                       kube-proxy): a dead replica is skipped, its open connections cut

\b
Examples:
  rain cluster                                  # 2 replicas, front on 127.0.0.1:8000
  rain cluster --replicas 3 --folder ~/rain-cluster   # keep the database and the logs
  rain cluster --engine-url http://127.0.0.1:8012/v1 --serve-arg=--policy=refuse
  PGPASSWORD=... rain cluster --store postgresql://rain@db:5432/rain
  RAINLM_API_KEY=s3cret rain cluster --serve-arg=--embedder=hashing
"""


_OPTIONS = {"serve_args": "--serve-arg", "store": "--store", "engine_url": "--engine-url",
            "front_port": "--port", "replicas": "--replicas"}
"""LocalCluster's argument -> the option it comes from (for error messages)."""


@click.command("cluster", epilog=EPILOG)
@click.option("--replicas", metavar="N", type=click.IntRange(min=1), default=2,
              show_default=True, help="How many `rain serve` replicas.")
@click.option("--port", metavar="PORT", type=click.IntRange(0, 65535), default=8000,
              show_default=True,
              help="The front's port: send requests here. The replicas take the ports after "
                   "it (8001, 8002, ...), the same each time, so a cluster started again on "
                   "the same store marks what the last one left unfinished. 0: free ports.")
@click.option("--engine-url", metavar="URL", default=None,
              help="An OpenAI-compatible engine's /v1 URL for every replica. Default: start "
                   "llama.cpp's server on the embedded model (needs llama-cpp-python with its "
                   "server extras).")
@click.option("--engine-threads", metavar="N", type=click.IntRange(min=1), default=None,
              help="Threads of the engine started here. Default: half the CPU cores, at "
                   "most 8.")
@click.option("--store", "store", metavar="URL", default=None,
              help="A postgresql://USER@HOST:PORT/DB URL every replica shares (password from "
                   "PGPASSWORD or ~/.pgpass keeps it out of the process list). Default: a "
                   "PostgreSQL server of its own, in --folder or a temporary folder.")
@click.option("--folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Keep the local PostgreSQL (DIR/postgres) and the logs (DIR/logs) here; "
                   "started again from the same data next time. Default: a temporary "
                   "database, removed on exit.")
@click.option("--log-dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Where engine.log and replica-K.log go. Default: DIR/logs with --folder, "
                   "else a new temporary folder (kept).")
@click.option("--serve-arg", "serve_args", metavar="ARG", multiple=True,
              help="An option passed to every `rain serve` replica (repeat; join an "
                   "option and its value with '=', as in the examples). Not --port, "
                   "--store/--db, --backend or --base-url: the cluster sets those.")
@click.option("--show-store-url", is_flag=True,
              help="Print the store's URL with its password (for an `export "
                   "RAINLM_AUDIT_DB=...` line). Default: shown without it.")
def cluster_command(replicas: int, port: int, engine_url: str | None,
                    engine_threads: int | None, store: str | None, folder: Path | None,
                    log_dir: Path | None, serve_args: tuple[str, ...],
                    show_store_url: bool) -> None:
    """Run the production layout on this machine: a PostgreSQL audit store, a serving
    engine, N `rain serve` replicas and a round-robin front, until Ctrl-C.

    Prints what runs where, how to send a request and how to read the shared audit
    trail and review queue. Ctrl-C or SIGTERM stops the front, the replicas, the engine
    and the database, in that order. See docs/deploy.md for the same layout on
    Kubernetes.
    """
    from rainlm.cluster.local import LocalCluster
    from rainlm.errors import ConfigError

    began = time.monotonic()

    def progress(line: str) -> None:
        click.echo(f"rain cluster: [{time.monotonic() - began:5.1f} s] {line}", err=True)

    try:
        cluster = LocalCluster(replicas=replicas, engine_url=engine_url, store=store,
                               folder=folder, front_port=port, serve_args=serve_args,
                               log_dir=log_dir, engine_threads=engine_threads,
                               keep_logs=True, progress=progress,
                               replica_ports=_replica_ports(port, replicas))
    except ConfigError as exc:  # named as the option that gave it
        option = _OPTIONS.get(exc.field, exc.field)
        raise click.UsageError(f"{option}: {str(exc).removeprefix(exc.field + ': ')}") from None
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    # while starting, SIGTERM is a Ctrl-C: start() stops what it started, then re-raises
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        try:
            cluster.start()
        except KeyboardInterrupt:
            click.echo("rain cluster: interrupted while starting; everything started is "
                       "stopped.", err=True)
            raise SystemExit(130) from None

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        for signum in previous:
            signal.signal(signum, on_signal)
        click.echo(_summary(cluster, replicas, serve_args, show_store_url,
                            time.monotonic() - began))
        _wait(cluster, stop)
        click.echo("rain cluster: stopping (front, replicas, engine, store)…", err=True)
    finally:
        try:
            cluster.stop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    click.echo(f"rain cluster: stopped. Logs: {cluster.log_dir}", err=True)


def _replica_ports(port: int, replicas: int) -> list[int] | None:
    """The ports after the front's (None: free ones, for --port 0)."""
    if port == 0:
        return None
    if port + replicas > 65535:
        raise click.BadParameter(f"leaves no room for {replicas} replica ports after it "
                                 f"(they take the next ports)", param_hint="--port")
    return [port + 1 + k for k in range(replicas)]


def _wait(cluster: Any, stop: threading.Event) -> None:
    """Until ``stop`` is set; says once when a replica exits on its own."""
    reported: set[int] = set()
    while not stop.wait(1.0):
        for index, proc in enumerate(cluster.replica_processes):
            code = proc.poll()
            if code is not None and index not in reported:
                reported.add(index)
                click.echo(f"rain cluster: replica {index} exited with {code}; the front "
                           f"skips it (log {cluster.replica_log(index)})", err=True)
            elif code is None:
                reported.discard(index)


def _summary(cluster: Any, replicas: int, serve_args: tuple[str, ...],
             show_store_url: bool, seconds: float) -> str:
    """What runs where, how to call it, how to read the audit trail."""
    from rainlm.cluster.local import DATABASE
    from rainlm.trace.location import ENV_VAR, describe

    front = cluster.front_url
    keyed = bool(os.environ.get("RAINLM_API_KEY")) or any(
        a.startswith("--api-key") for a in serve_args)
    auth = ' -H "Authorization: Bearer $RAINLM_API_KEY"' if keyed else ""
    api_key = "os.environ['RAINLM_API_KEY']" if keyed else "'none'"
    imports = "import os; " if keyed else ""
    lines = [f"rain cluster: ready in {seconds:.1f} s ({replicas} replica"
             f"{'s' if replicas != 1 else ''}). Ctrl-C stops everything.", ""]
    lines += [f"  {line}" for line in cluster.describe()]
    lines += [
        "",
        "Send requests to the front (each connection goes to the next replica):",
        f"  curl -s {front}/v1/chat/completions -H 'Content-Type: application/json'{auth} \\",
        """    -d '{"model": "rain", "messages": [{"role": "user", "content": "Hi"}], """
        """"max_tokens": 16}'""",
        f"""  python -c "{imports}from openai import OpenAI; c = OpenAI(base_url='{front}/v1', """
        f"""api_key={api_key}); print(c.chat.completions.create(model='rain', """
        """messages=[{'role': 'user', 'content': 'Hi'}], max_tokens=16)"""
        """.choices[0].message.content)\"""",
        f"  review page: {front}/review" + ("?key=KEY" if keyed else ""),
        "",
        "Read the shared audit trail and review queue (from another terminal):",
    ]
    url = cluster.store_url
    if show_store_url:
        lines.append(f"  export {ENV_VAR}='{url}'")
    elif cluster.postgres is not None:
        pg = cluster.postgres
        password_file = pg.folder / "password"
        lines.append(f'  export {ENV_VAR}="postgresql://{pg.user}:$(cat {password_file})'
                     f'@127.0.0.1:{pg.port}/{DATABASE}"')
        lines.append(f"    (the password is in {password_file}; --show-store-url prints "
                     f"the whole URL)")
    else:
        lines.append(f"  export {ENV_VAR}='{describe(url)}'")
        lines.append("    (your URL: put its password in place of ***, or leave it out and "
                     "set PGPASSWORD)")
    lines += [
        "  rain trace list                     # every request; \"started\" while it runs, "
        "\"interrupted\" if its replica died",
        "  rain review list                    # answers the fail-safe flagged "
        "(or: rain review list --store URL)",
        "  rain review next --reviewer NAME    # take one; held for you alone",
    ]
    return "\n".join(lines)
