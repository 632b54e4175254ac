"""``LocalCluster`` and ``rain cluster``: the production layout on 127.0.0.1.

The model test starts the whole thing for real (PostgreSQL, llama.cpp's server on the
embedded GGUF or ``$RAINLM_ENGINE_URL``, two ``rain serve`` replicas, the round-robin
front), spreads requests over both replicas, SIGKILLs one in the middle of a request
and checks that the survivor answers everything after it and that the restarted one
marks its unfinished record "interrupted". Every client call has a timeout.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from click.testing import CliRunner

from rainlm.cli.main import cli
from rainlm.cluster.local import LocalCluster
from rainlm.errors import ConfigError
from tests.backends.engine import ENGINE_INSTALL, llama_server_importable
from tests.needs import (require, require_embedded_model, require_module, require_postgres)

TIMEOUT_S = 120.0
"""One request's limit (the first one judges a ~550-token rubric prompt on a cold engine)."""


# ------------------------------------------------------------------ no model
def test_cluster_help_names_every_option_and_example():
    result = CliRunner().invoke(cli, ["cluster", "--help"])
    assert result.exit_code == 0, result.output
    for text in ("--replicas", "--port", "--engine-url", "--store", "--folder", "--log-dir",
                 "--serve-arg", "--show-store-url", "RAINLM_AUDIT_DB", "Examples:",
                 "rain cluster --replicas 3"):
        assert text in result.output
    assert "cluster" in CliRunner().invoke(cli, ["--help"]).output


@pytest.mark.parametrize("args, message", [
    (["--serve-arg=--port=9"], "--serve-arg: --port is set by the cluster itself"),
    (["--serve-arg", "--store=x.sqlite3"], "--serve-arg: --store is set by the cluster"),
    (["--store", "audit.sqlite3"], "--store: must be a postgresql://"),
    (["--engine-url", "127.0.0.1:8012"], "--engine-url: must be an http(s) URL"),
])
def test_bad_options_are_refused_before_anything_starts(args, message):
    result = CliRunner().invoke(cli, ["cluster", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_a_store_url_password_never_shows_in_errors():
    with pytest.raises(ConfigError) as caught:
        LocalCluster(store="mysql://root:hunter2@db/x")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="replicas: must be an integer >= 1"):
        LocalCluster(replicas=0)


# ------------------------------------------------------------------ the real cluster
def _chat(httpx, url: str, content: str = "Hi", max_tokens: int = 4):
    """One chat request on a new connection (the front spreads connections)."""
    return httpx.post(f"{url}/v1/chat/completions", timeout=TIMEOUT_S, json={
        "model": "rain", "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens, "rain": {"method": "greedy"}})


def _rows(psycopg, store_url: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    """trace id -> (owner, finish_reason), read from PostgreSQL directly."""
    with psycopg.connect(store_url, connect_timeout=10) as conn:
        rows = conn.execute("SELECT id, owner, finish_reason FROM traces WHERE id = ANY(%s)",
                            (ids,)).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _started_by(psycopg, store_url: str, owner: str) -> list[str]:
    with psycopg.connect(store_url, connect_timeout=10) as conn:
        rows = conn.execute("SELECT id FROM traces WHERE owner = %s AND finish_reason = "
                            "'started'", (owner,)).fetchall()
    return [row[0] for row in rows]


@pytest.mark.model
def test_two_replicas_share_the_store_and_survive_a_killed_one(tmp_path):
    psycopg = require_module("psycopg", part="postgres")
    require_postgres()
    httpx = require_module("httpx")
    engine_url = os.environ.get("RAINLM_ENGINE_URL") or None
    if engine_url is None:
        require(llama_server_importable(), "llama_cpp.server (the llama.cpp engine)",
                ENGINE_INSTALL, part="engine")
        require_embedded_model()
    began = time.monotonic()
    with LocalCluster(replicas=2, engine_url=engine_url, log_dir=tmp_path,
                      serve_args=["--embedder", "hashing"]) as cluster:
        front, owners = cluster.front_url, cluster.owners
        assert len(set(owners)) == 2 and cluster.store_url.startswith("postgresql://")
        assert cluster.store_url not in "\n".join(cluster.describe())  # no password shown
        for process in cluster.replica_processes:  # never on a command line
            assert not any(cluster.store_url in arg for arg in process.args)

        # 4 requests, a connection each: 2 per replica, all recorded in the one store
        answers = [_chat(httpx, front) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        ids = [a.json()["rain"]["trace_id"] for a in answers]
        rows = _rows(psycopg, cluster.store_url, ids)
        assert sorted(rows) == sorted(ids)
        assert {owner for owner, _ in rows.values()} == set(owners)
        assert {reason for _, reason in rows.values()} == {"length"}

        # the next connection goes to replica 0: kill it while its search runs
        failed: list[BaseException] = []

        def long_request() -> None:
            try:
                _chat(httpx, front, "Write a long story about a dragon.", max_tokens=256)
            except httpx.HTTPError as exc:
                failed.append(exc)

        client = threading.Thread(target=long_request, daemon=True)
        client.start()
        deadline = time.monotonic() + 60
        while not (in_flight := _started_by(psycopg, cluster.store_url, owners[0])):
            assert client.is_alive() and time.monotonic() < deadline, \
                "replica 0 never recorded the long request as started"
            time.sleep(0.05)
        pid = cluster.kill_replica(0)
        assert pid > 0 and cluster.replica_processes[0].returncode == -9
        client.join(TIMEOUT_S)
        assert not client.is_alive() and len(failed) == 1
        assert not isinstance(failed[0], httpx.TimeoutException), failed[0]  # cut, not hung
        assert _rows(psycopg, cluster.store_url, in_flight)[in_flight[0]][1] == "started"

        # the survivor answers every request after it
        answers = [_chat(httpx, front) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        rows = _rows(psycopg, cluster.store_url,
                     [a.json()["rain"]["trace_id"] for a in answers])
        assert {owner for owner, _ in rows.values()} == {owners[1]}
        assert cluster.front.front.failed_connects >= 1

        # restarted on its port, it is the same owner: its unfinished record is marked
        new_pid = cluster.restart_replica(0)
        processes = [*cluster.replica_processes, cluster.engine_process]
        assert new_pid != pid
        assert httpx.get(f"{cluster.replica_urls[0]}/health", timeout=10).status_code == 200
        assert _rows(psycopg, cluster.store_url, in_flight)[in_flight[0]] == \
            (owners[0], "interrupted")
    print(f"cluster test: {time.monotonic() - began:.1f} s")
    assert all(p.poll() is not None for p in processes if p is not None)  # all stopped
