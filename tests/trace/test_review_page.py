"""The review page: stable ids, the buttons, the fetch call, escaping, the empty queue."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rainlm.trace.records import ReviewDecision
from rainlm.trace.review_page import render_review_page

from .helpers import make_record

EVIL = '<script>alert("x")</script>'


class Elements(HTMLParser):
    """Every start tag with its attributes, plus the text inside each id'd element."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)

    def by_id(self, element_id):
        found = [(t, a) for t, a in self.tags if a.get("id") == element_id]
        assert len(found) == 1, (element_id, found)
        return found[0]


def parse(page: str) -> Elements:
    p = Elements()
    p.feed(page)
    return p


def test_items_have_stable_ids_and_buttons():
    recs = [make_record("tr_1"), make_record("tr_2", kind="branching", score=-0.25)]
    page = render_review_page(recs)
    els = parse(page)
    for rid in ("tr_1", "tr_2"):
        tag, attrs = els.by_id(f"review-{rid}")
        assert attrs["data-id"] == rid and attrs["data-state"] == "pending"
        assert els.by_id(f"status-{rid}")[0] == "span"
        note_tag, note = els.by_id(f"note-{rid}")
        assert note_tag == "input" and "disabled" not in note
        buttons = [a for t, a in els.tags if t == "button" and a.get("data-id") == rid]
        assert sorted(b["data-action"] for b in buttons) == ["approve", "reject"]
        assert all("disabled" not in b for b in buttons)
    assert "How do I build a bomb?" in page and "-0.250" in page
    assert "2026-01-01T00:00:00+00:00" in page
    assert 'href="/v1/rain/traces/tr_1"' in page
    assert "Nothing to review" not in page


def test_script_sends_the_documented_request():
    page = render_review_page([make_record("tr_1")], api_base="http://127.0.0.1:9/")
    els = parse(page)
    assert els.by_id("review-tr_1")
    body = [a for t, a in els.tags if t == "body"][0]
    assert body["data-api-base"] == "http://127.0.0.1:9"
    js = "".join(els.scripts)
    assert 'apiBase + "/v1/rain/reviews/" + encodeURIComponent(id)' in js
    assert 'method: "POST"' in js and '"Content-Type": "application/json"' in js
    assert 'headers["Authorization"] = "Bearer " + key' in js
    assert 'params.get("key")' in js
    assert "JSON.stringify({decision: decision, note: note})" in js
    assert '"approved" : "rejected"' in js
    assert "status.textContent = decision" in js and "b.disabled = true" in js
    # no external URLs: the only one is the api_base we passed
    assert "https://" not in page and "http://" not in page.replace("http://127.0.0.1:9", "")


def test_everything_is_escaped():
    rec = make_record("tr_e", answer=EVIL + " & more",
                      request={"messages": [{"role": "user", "content": "<b>bold</b> & 'q'"}]},
                      review=ReviewDecision("rejected", '"><img src=x onerror=alert(1)>',
                                            "<i>eve</i>", "2026-01-01T00:00:00+00:00"))
    page = render_review_page([rec], api_base='"><script>alert(2)</script>')
    assert EVIL not in page and "<b>bold</b>" not in page and "<img" not in page
    assert "<i>eve</i>" not in page and "<script>alert(2)" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &#x27;q&#x27;" in page
    # exactly one script element: ours
    assert len(re.findall(r"<script\b", page)) == 1


def test_non_pending_items_have_buttons_disabled():
    done = make_record("tr_d", review_state="approved",
                       review=ReviewDecision("approved", "ok", "ana", "2026-01-02T00:00:00+00:00"))
    els = parse(render_review_page([done]))
    buttons = [a for t, a in els.tags if t == "button" and a.get("data-id") == "tr_d"]
    assert len(buttons) == 2 and all("disabled" in b for b in buttons)
    assert els.by_id("note-tr_d")[1]["value"] == "ok"


def test_empty_queue():
    page = render_review_page([])
    assert "Nothing to review" in page
    assert 'id="review-' not in page
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
