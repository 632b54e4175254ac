"""The pilot page in headless Chromium, in both languages.

The page (rendered from ``tests/pilot/sample_report.py``, hostile strings included) is
opened from a file, its own Content-Security-Policy in force: no console errors, no page
errors, no dialog (an ``alert`` from an injected script would open one), the verdict is
visible, both charts are drawn, the sample table has one column per method, and a
screenshot is a real rendering, not a blank one.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright`` package (used
only as a driver: no browser is downloaded). Skipped when either is missing, unless
``RAINLM_REQUIRE_ALL=1`` or ``RAINLM_REQUIRE_CHROMIUM=1`` (``tests/needs.py``).
"""

from __future__ import annotations


import pytest

from rainlm.pilot.i18n import LANGS, text
from rainlm.pilot.page import render_pilot_page, write_pilot_page
from tests.browser import find_chromium, png_size_and_colours
from tests.pilot.sample_report import sample_report

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.mark.parametrize("lang", LANGS)
def test_the_pilot_page_renders_in_chromium(browser, lang, tmp_path):
    report = sample_report(lang, finished=False)
    path = write_pilot_page(report, tmp_path / f"pilot-{lang}.html")
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")

        assert page.evaluate("document.documentElement.lang") == lang
        # the verdict, big and first
        assert page.is_visible("#verdict-label")
        assert page.text_content("#verdict-label") == text(lang, "verdict_go_with_distillation")
        assert page.is_visible("#headline")
        assert page.text_content("#headline") == report["recommendation"]["headline"]
        label = page.query_selector("#verdict-label").bounding_box()
        assert label and label["y"] < 400 and label["height"] >= 30
        assert page.is_visible("#partial")
        assert page.text_content("#partial").startswith(text(lang, "partial_banner"))

        # both charts are drawn
        boxes = [svg.bounding_box() for svg in page.query_selector_all("svg.chart")]
        assert len(boxes) == 2
        assert all(b and b["width"] > 300 and b["height"] > 150 for b in boxes), boxes
        assert page.evaluate(
            "Array.from(document.querySelectorAll('svg.chart circle'))"
            ".filter(c => c.getBoundingClientRect().width > 0).length") > 100

        # one column per method, one row group per sample item
        assert len(page.query_selector_all("#sample-table thead th")) == len(report["methods"])
        assert len(page.query_selector_all("#sample-table tbody.item")) == len(report["samples"])
        assert page.evaluate(
            "Array.from(document.querySelectorAll('#sample-table tbody.item tr:last-child'))"
            ".every(r => r.children.length === %d)" % len(report["methods"]))

        # nothing injected ran or was created, nothing was fetched, nothing overflows
        assert page.evaluate(
            "document.querySelectorAll('script, img, iframe, textarea').length") == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= 1100
        shot = page.screenshot(full_page=True)
        assert errors == [] and dialogs == []
        assert requests == [path.as_uri()]
    finally:
        page.close()

    width, height, colours = png_size_and_colours(shot)
    assert width == 1100 and height > 2000 and colours > 20


def test_the_page_fits_a_phone_screen(browser, tmp_path):
    path = write_pilot_page(sample_report("en"), tmp_path / "pilot.html")
    page = browser.new_page(viewport={"width": 390, "height": 800})
    try:
        page.goto(path.as_uri())
        # the page itself does not scroll sideways; wide tables scroll in their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.is_visible("#verdict-label")
        boxes = [svg.bounding_box() for svg in page.query_selector_all("svg.chart")]
        assert all(b and 0 < b["width"] <= 390 and b["height"] > 0 for b in boxes), boxes
    finally:
        page.close()


def test_the_pages_content_policy_blocks_what_escaping_might_miss(browser, tmp_path):
    """Defence in depth: markup slipped into the page unescaped still cannot run or
    fetch anything (the meta Content-Security-Policy)."""
    html = render_pilot_page(sample_report("en")).replace(
        "<main>", '<main><script>alert("inline")</script><img src="x" '
                  'onerror="alert(\'onerror\')"><img src="https://example.invalid/x.png">', 1)
    path = tmp_path / "injected.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page()
    dialogs: list[str] = []
    console: list[str] = []
    fetched: list[str] = []
    failed: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))
    page.on("requestfinished", lambda r: fetched.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    try:
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        assert dialogs == []
        assert fetched == [path.as_uri()]  # the images were refused, not fetched
        assert "https://example.invalid/x.png" in failed
        assert any("Content Security Policy" in m for m in console), console
    finally:
        page.close()
