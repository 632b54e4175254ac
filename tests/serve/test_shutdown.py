"""Graceful shutdown of a real ``rain serve``: no accepted request goes unrecorded.

A long search is running and one request waits in the queue when the server gets
SIGTERM (and, in the second test, SIGINT right after): the queued request is recorded as
rejected (its client gets 503), the running search is stopped at its next model call and
its answer so far is recorded (finish reason "stopped"), then the process exits.
Synchronised on what the server reports (/health), not on timing.
"""

from __future__ import annotations

import signal
import threading

import pytest

from tests.serve.server import running_server

QUESTION = [{"role": "user", "content": "Write a long story about a dragon."}]
LONG = {"model": "rain", "messages": QUESTION, "max_tokens": 64,
        "rain": {"time_budget_s": 100, "max_searches_per_step": 200}}


def _until(url: str, cond) -> None:
    import httpx

    for _ in range(6000):  # reached within ms; 60 s is a hang
        if cond(httpx.get(f"{url}/health", timeout=10).json()):
            return
        threading.Event().wait(0.01)
    raise AssertionError("the server never reached the state")


def _shutdown_with_work_in_flight(tmp_path, signals, shutdown_timeout: str):
    import httpx

    from rainlm.trace.store import TraceStore

    db = tmp_path / "audit.sqlite3"
    args = ["--db", str(db), "--embedder", "hashing", "--device", "cpu", "--queue-size", "1",
            "--policy", "pass", "--shutdown-timeout", shutdown_timeout, "--max-concurrent", "1"]
    results: dict[str, object] = {}

    def post(name: str) -> None:
        try:
            results[name] = httpx.post(f"{srv.url}/v1/chat/completions", json=LONG, timeout=120)
        except httpx.HTTPError as exc:  # the server may close the connection on exit
            results[name] = exc

    with running_server(args, tmp_path / "server.log") as srv:
        running = threading.Thread(target=post, args=("running",))
        running.start()
        _until(srv.url, lambda h: h["busy"])
        queued = threading.Thread(target=post, args=("queued",))
        queued.start()
        _until(srv.url, lambda h: h["queue_depth"] == 1)
        for sig in signals:
            srv.process.send_signal(sig)
        assert srv.process.wait(timeout=120) is not None
        running.join(timeout=60)
        queued.join(timeout=60)
        log = srv.log()
    with TraceStore(db) as store:
        records = store.list(limit=10)
    by_reason = {r.finish_reason: r for r in records}
    assert len(records) == 2, (records, log)
    assert set(by_reason) == {"stopped", "rejected"}, log
    stopped, rejected = by_reason["stopped"], by_reason["rejected"]
    assert stopped.error is None and stopped.trace["tree"]["nodes"]
    assert stopped.answer == stopped.trace["text"]  # what the search had committed when stopped
    assert stopped.scores["value"] is not None  # and the fail-safe still judged it
    assert "shut down before this request's search started" in rejected.error
    assert "shutting down: 1 queued request(s) rejected" in log
    return results


@pytest.mark.model
def test_sigterm_records_the_running_search_and_rejects_the_queue(tmp_path):
    results = _shutdown_with_work_in_flight(tmp_path, [signal.SIGTERM], "1")
    queued = results["queued"]
    assert getattr(queued, "status_code", 503) == 503  # told to retry elsewhere, or cut off
    # the stopped search's answer reaches its client cut short, and says so
    running = results["running"].json()
    assert running["rain"]["finish_reason"] == "stopped"
    assert running["choices"][0]["finish_reason"] == "abort"


@pytest.mark.model
def test_a_second_signal_stops_at_once_and_still_records(tmp_path):
    # a 300 s grace would outlast the test: only the second signal can end it in time
    _shutdown_with_work_in_flight(tmp_path, [signal.SIGTERM, signal.SIGINT], "300")
