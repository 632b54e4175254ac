"""A killed server leaves a record of every request it accepted (a real ``rain serve`` on
the embedded model, killed with SIGKILL): a streamed answer whose trace id the client
already holds, and a request waiting behind it, are on disk as "started"; the restarted
server marks them "interrupted" and answers as before."""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time

import pytest

from rainlm.trace.store import TraceStore
from tests.needs import require_embedded_model, require_installed
from tests.serve.server import free_port, running_server

pytestmark = pytest.mark.model
KEY = "sk-test-kill"
QUESTION = [{"role": "user", "content": "Tell me a long story about a lighthouse."}]


def _args(db) -> list[str]:
    return ["--db", str(db), "--api-key", KEY, "--embedder", "hashing", "--device", "cpu",
            "--policy", "pass", "--max-time-budget", "60", "--max-new-tokens-limit", "64"]


def _body(stream: bool) -> dict:
    return {"model": "rain", "messages": QUESTION, "max_tokens": 64, "stream": stream,
            "rain": {"time_budget_s": 60}}


def _stream_until_killed(url: str, first_id: "queue.Queue[str]") -> None:
    """Stream an answer, put the trace id of its first chunk on ``first_id``, and keep
    reading until the server dies (a client that leaves would stop a search that has not
    started yet: recorded as an error, not as "started")."""
    import httpx

    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=_body(True), timeout=120,
                          headers={"Authorization": f"Bearer {KEY}"}) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if line.startswith("data: ") and first_id.empty():
                    first_id.put(json.loads(line[len("data: "):])["id"])
    except httpx.HTTPError:
        pass


def _post_until_killed(url: str) -> None:
    """A second request, queued behind the running search (its server is killed)."""
    import httpx

    try:
        httpx.post(f"{url}/v1/chat/completions", json=_body(False), timeout=120,
                   headers={"Authorization": f"Bearer {KEY}"})
    except httpx.HTTPError:
        pass


def _records(db) -> dict[str, str]:
    with TraceStore(db) as store:
        return {r.id: r.finish_reason for r in store.list(limit=100)}


def test_a_killed_server_leaves_started_records_and_a_restart_marks_them(tmp_path,
                                                                        store_location):
    """On an SQLite file and on a PostgreSQL database (the replicas' shared store)."""
    require_installed("torch", "transformers", "fastapi", "uvicorn", "httpx")
    require_embedded_model()
    import httpx

    db = store_location
    port = free_port()  # the restarted server is the same server: same host and port
    with running_server(_args(db), tmp_path / "first.log", port=port) as server:
        first_id: queue.Queue[str] = queue.Queue()
        streaming = threading.Thread(target=_stream_until_killed, args=(server.url, first_id),
                                     daemon=True)
        streaming.start()
        streamed = first_id.get(timeout=60)
        waiting = threading.Thread(target=_post_until_killed, args=(server.url,), daemon=True)
        waiting.start()
        deadline = time.monotonic() + 30
        while len(_records(db)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        server.process.kill()  # SIGKILL: no shutdown, no chance to write anything
        server.process.wait(timeout=10)
    killed = _records(db)
    assert killed.get(streamed) == "started", killed
    assert list(killed.values()) == ["started", "started"], killed

    with TraceStore(db) as other:  # another server's unfinished request: not this one's
        other.record(dataclasses.replace(other.get(streamed), id="tr_other", finish_reason="started"),
                     owner="rain serve@elsewhere:1")
    with running_server(_args(db), tmp_path / "second.log", port=port) as server:
        after = _records(db)
        assert after == {**{tid: "interrupted" for tid in killed}, "tr_other": "started"}, after
        assert "marked \"interrupted\"" in server.log()
        with TraceStore(db) as store:
            assert "killed or crashed" in store.get(streamed).error
        done = httpx.post(f"{server.url}/v1/chat/completions",
                          json={**_body(False), "max_tokens": 4, "rain": {"method": "greedy"}},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        assert done.status_code == 200
        assert _records(db)[done.json()["id"]] == "length"
        if "@" in str(db):  # a URL: its password is in no log line
            secret = str(db).split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
            assert secret not in server.log() and secret not in (tmp_path / "first.log").read_text()
