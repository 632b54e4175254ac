"""The retry policy of JsonHttp against a real (tiny, scripted) HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rainlm.backends.http_json import HttpStatusError, JsonHttp, RetryPolicy
from rainlm.errors import BackendError


class _Scripted(BaseHTTPRequestHandler):
    """Answers from a script of (status, headers, body) and records the requests."""

    script: list = []
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        n = int(self.headers.get("Content-Length", 0))
        type(self).seen.append((self.path, json.loads(self.rfile.read(n) or b"null"),
                                self.headers.get("Authorization")))
        status, headers, body = type(self).script.pop(0)
        if status == "hang":
            time.sleep(body)
            return
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Scripted.script, _Scripted.seen = [], []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_retries_5xx_and_honours_retry_after(server):
    _Scripted.script = [(503, {"Retry-After": "0.3"}, {"error": {"message": "busy"}}),
                        (429, {}, {"error": "slow down"}),
                        (200, {}, {"ok": 1})]
    http = JsonHttp(server, api_key="k1", policy=RetryPolicy(backoff_s=0.05))
    start = time.monotonic()
    assert http.request("POST", "completions", {"x": 1}) == {"ok": 1}
    assert time.monotonic() - start >= 0.3
    assert [s[0] for s in _Scripted.seen] == ["/v1/completions"] * 3
    assert _Scripted.seen[0][2] == "Bearer k1"


def test_4xx_is_not_retried_and_keeps_the_engine_message(server):
    _Scripted.script = [(400, {}, {"error": {"message": "prompt too long", "type": "x"}})]
    with pytest.raises(HttpStatusError, match="prompt too long") as err:
        JsonHttp(server).request("POST", "completions", {})
    assert err.value.status == 400 and len(_Scripted.seen) == 1


def test_persistent_5xx_gives_a_retryable_error_naming_the_url(server):
    _Scripted.script = [(500, {}, {"error": {"message": "boom"}})] * 3
    http = JsonHttp(server, policy=RetryPolicy(max_retries=2, backoff_s=0.01))
    with pytest.raises(BackendError, match=r"3 attempt\(s\).*HTTP 500: boom") as err:
        http.request("POST", "completions", {})
    assert err.value.retryable and f"{server}/completions" in str(err.value)


def test_a_hang_times_out_without_retrying(server):
    _Scripted.script = [("hang", {}, 2.0)]
    http = JsonHttp(server, policy=RetryPolicy(timeout_s=0.3))
    with pytest.raises(BackendError, match="did not answer within 0.3 s") as err:
        http.request("POST", "completions", {})
    assert err.value.retryable
    assert len(_Scripted.seen) == 1  # a timeout is not retried (a retry would be a 2nd request)


def test_probe_reports_any_status_at_once(server):
    _Scripted.script = [(500, {}, {"error": {"message": "Input should be a valid string"}})]
    with pytest.raises(HttpStatusError, match="valid string"):
        JsonHttp(server).request("POST", "completions", {}, probe=True)
    assert len(_Scripted.seen) == 1
