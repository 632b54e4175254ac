"""The review page: stable ids, the buttons, the fetch call, escaping, the empty queue,
the links to the tree page, the count, the badges, and the 401 page with the key hint."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from rainlm.trace.records import ReviewDecision
from rainlm.trace.review_page import render_key_hint_page, render_review_page

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
    assert "Nothing to review" not in page


def test_trace_links_open_the_html_tree_page_and_keep_a_json_link():
    els = parse(render_review_page([make_record("tr_1"), make_record("a b/c")],
                                   api_base="http://127.0.0.1:9"))
    links = [a for t, a in els.tags if t == "a" and "trace-link" in (a.get("class") or "")]
    assert [a["href"] for a in links] == ["http://127.0.0.1:9/v1/rain/traces/tr_1/html",
                                          "http://127.0.0.1:9/v1/rain/traces/a%20b%2Fc/html"]
    assert all(a["target"] == "_blank" and a["rel"] == "noopener" for a in links)
    raw = [a["href"] for t, a in els.tags if t == "a" and a.get("class") == "trace-json"]
    assert raw == ["http://127.0.0.1:9/v1/rain/traces/tr_1",
                   "http://127.0.0.1:9/v1/rain/traces/a%20b%2Fc"]
    js = "".join(els.scripts)
    assert 'querySelectorAll("a.trace-link, a.trace-json")' in js  # both get ?key=


def test_count_counts_pending_answers_with_singular_and_plural():
    done = make_record("tr_d", review_state="approved",
                       review=ReviewDecision("approved", None, None, "2026-01-02T00:00:00+00:00"))
    cases = [([], "0 answers awaiting review"),
             ([make_record("tr_1")], "1 answer awaiting review"),
             ([make_record("tr_1"), done], "1 answer awaiting review"),
             ([make_record("tr_1"), make_record("tr_2")], "2 answers awaiting review")]
    for records, text in cases:
        page = render_review_page(records)
        tag, attrs = parse(page).by_id("count")
        assert attrs["data-pending"] == text.split()[0]
        assert f'id="count" data-pending="{text.split()[0]}">{text}</p>' in page


def test_script_lowers_the_count_only_after_a_decision_succeeds():
    js = "".join(parse(render_review_page([make_record("tr_1")])).scripts)
    ok = js.index("if (!resp.ok) { throw new Error(errorText(resp, text)); }")
    assert js.index("if (wasPending) { decrementCount(); }") > ok
    assert js.index("decrementCount()", ok) < js.index(".catch(")
    assert 'n + " answer" + (n === 1 ? "" : "s") + " awaiting review"' in js


def _badges_of(page: str, rid: str) -> list[tuple[str, str]]:
    """(class, text) of each badge in the item ``rid``."""
    item = page.split(f'id="review-{rid}"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<span class="badge ([^"]+)" title="[^"]*">([^<]*)</span>', item)


def test_badges_for_budget_limited_and_empty_answers():
    plain = make_record("tr_plain")
    greedy = make_record("tr_greedy", finish_reason="time_budget",
                         stats={**plain.stats, "budget_exhausted": True, "greedy_tail_tokens": 3})
    cut = make_record("tr_cut", finish_reason="search_budget",
                      stats={**plain.stats, "budget_exhausted": True, "greedy_tail_tokens": 0})
    stopped = make_record("tr_stop", finish_reason="stopped", answer="")
    ended = make_record("tr_ended", stats={**plain.stats, "budget_exhausted": True})
    blank = make_record("tr_blank", answer=" \n\t ")
    page = render_review_page([plain, greedy, cut, stopped, ended, blank])
    assert _badges_of(page, "tr_plain") == []
    assert _badges_of(page, "tr_greedy") == [("budget-limited finished-greedily",
                                              "budget-limited: finished greedily")]
    assert "the time budget ran out; the last 3 tokens were finished greedily" in page
    assert _badges_of(page, "tr_cut") == [("budget-limited cut-off", "budget-limited: cut off")]
    assert "the search budget ran out; the answer is cut off there" in page
    assert _badges_of(page, "tr_stop") == [("budget-limited cut-off", "stopped: cut off"),
                                           ("empty-answer", "empty answer")]
    assert _badges_of(page, "tr_ended") == [("budget-limited", "budget-limited")]
    assert _badges_of(page, "tr_blank") == [("empty-answer", "empty answer")]


def test_key_hint_page_says_how_to_pass_the_key():
    page = render_key_hint_page()
    els = parse(page)
    assert els.by_id("hint") and els.by_id("api-hint")
    assert "Open <code>/review?key=YOUR_KEY</code>" in page
    assert "<code>Authorization: Bearer KEY</code>" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


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
    assert "JSON.stringify({decision: decision, note: note, reviewer: reviewer()})" in js
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
