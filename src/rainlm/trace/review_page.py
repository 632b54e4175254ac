"""The human review page: flagged answers with Approve / Reject buttons.

One standalone HTML page (inline CSS and JS, no external URLs). Each item is
``<section id="review-ID">`` with a status ``<span id="status-ID">``, a note
``<input id="note-ID">``, buttons ``data-action="approve"|"reject"`` ``data-id=ID``,
a link to the trace's HTML tree page (``a.trace-link``, ``TRACES_PATH + ID + "/html"``)
and its JSON (``a.trace-json``), and badges (``span.badge``: ``budget-limited``, with
``cut-off`` or ``finished-greedily``; ``empty-answer``). A click POSTs
``{"decision": "approved"|"rejected", "note": ...}`` to ``API_BASE/v1/rain/reviews/ID``,
and the reviewer name typed on the page (``"reviewer"``), with ``Authorization: Bearer KEY`` when the page was opened as ``/review?key=KEY``; on
success the header ``<p id="count">`` counts one answer fewer. Every piece of model or
user text is escaped. ``render_key_hint_page`` is the 401 page a browser gets without
the key.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from rainlm.trace.records import TraceRecord
from rainlm.trace.view import badge_spans, fmt_num, prompt_text, score_of

__all__ = ["render_review_page", "render_key_hint_page", "trace_page_path", "TRACES_PATH",
           "TRACE_PAGE_SUFFIX", "count_text", "queue_text"]

TRACES_PATH = "/v1/rain/traces/"
"""Where an item's JSON link points (the trace id is appended)."""
TRACE_PAGE_SUFFIX = "/html"
"""Appended to ``TRACES_PATH + ID``: the trace's HTML tree page (``render_tree_html``)."""

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.4em}
.item{border:1px solid #ccc;border-radius:6px;padding:.8em 1em;margin:1em 0}
.item[data-state=approved]{border-color:#2a7;background:#f3fbf6}
.item[data-state=rejected]{border-color:#c44;background:#fdf4f4}
.meta{color:#666;font-size:.85em}
.label{font-weight:600;margin-top:.6em}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;margin:.2em 0}
.controls{margin-top:.6em;display:flex;gap:.5em;align-items:center;flex-wrap:wrap}
.controls input{flex:1;min-width:12em}
.status{font-weight:600}
.status.error{color:#b00}
.empty{color:#666;font-style:italic}
.badges{margin-top:.4em}
.badge{display:inline-block;padding:0 .4em;margin-right:.4em;border-radius:4px;font-size:.85em;font-weight:600}
.badge.budget-limited{background:#fe9;color:#630}
.badge.cut-off{background:#fcb;color:#800}
.badge.empty-answer{background:#ddd;color:#333}
.held{color:#a50;font-weight:600}
.take{display:flex;gap:.5em;align-items:center;flex-wrap:wrap}
"""

_JS = r"""
(function () {
  var params = new URLSearchParams(window.location.search);
  var key = params.get("key");
  var apiBase = document.body.getAttribute("data-api-base") || "";
  var countEl = document.getElementById("count");
  var reviewerEl = document.getElementById("reviewer");
  if (reviewerEl) {
    try { reviewerEl.value = window.localStorage.getItem("rainlm-reviewer") || ""; } catch (e) { /* no storage */ }
    reviewerEl.addEventListener("change", function () {
      try { window.localStorage.setItem("rainlm-reviewer", reviewerEl.value); } catch (e) { /* no storage */ }
    });
  }
  function reviewer() { return reviewerEl && reviewerEl.value ? reviewerEl.value : null; }
  function countText(n) {
    return n + " answer" + (n === 1 ? "" : "s") + " awaiting review";
  }
  function decrementCount() {
    if (!countEl) { return; }
    var n = Math.max(0, (parseInt(countEl.getAttribute("data-pending"), 10) || 0) - 1);
    countEl.setAttribute("data-pending", String(n));
    countEl.textContent = countText(n);
  }
  if (key) {
    document.querySelectorAll("a.trace-link, a.trace-json").forEach(function (a) {
      var url = new URL(a.getAttribute("href"), window.location.href);
      url.searchParams.set("key", key);
      a.setAttribute("href", url.toString());
    });
  }
  function errorText(resp, text) {
    try {
      var body = JSON.parse(text);
      var err = body && (body.error || body.detail);
      if (err && typeof err === "object" && err.message) { return err.message; }
      if (typeof err === "string") { return err; }
    } catch (e) { /* not JSON */ }
    return "HTTP " + resp.status + (text ? ": " + text : "");
  }
  function decide(button) {
    var id = button.getAttribute("data-id");
    var decision = button.getAttribute("data-action") === "approve" ? "approved" : "rejected";
    var item = document.getElementById("review-" + id);
    var status = document.getElementById("status-" + id);
    var noteInput = document.getElementById("note-" + id);
    var note = noteInput && noteInput.value ? noteInput.value : null;
    var buttons = item.querySelectorAll("button[data-action]");
    buttons.forEach(function (b) { b.disabled = true; });
    status.classList.remove("error");
    status.textContent = "sending…";
    var headers = {"Content-Type": "application/json"};
    if (key) { headers["Authorization"] = "Bearer " + key; }
    fetch(apiBase + "/v1/rain/reviews/" + encodeURIComponent(id), {
      method: "POST", headers: headers,
      body: JSON.stringify({decision: decision, note: note, reviewer: reviewer()})
    }).then(function (resp) {
      return resp.text().then(function (text) {
        if (!resp.ok) { throw new Error(errorText(resp, text)); }
        var wasPending = item.getAttribute("data-state") === "pending";
        status.textContent = decision;
        item.setAttribute("data-state", decision);
        if (wasPending) { decrementCount(); }
        if (noteInput) { noteInput.disabled = true; }
      });
    }).catch(function (err) {
      status.textContent = (err && err.message) ? err.message : String(err);
      status.classList.add("error");
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }
  document.querySelectorAll("button[data-action]").forEach(function (b) {
    b.addEventListener("click", function () { decide(b); });
  });
  var nextButton = document.getElementById("take-next");
  var nextStatus = document.getElementById("next-status");
  function takeNext() {
    var name = reviewer();
    nextStatus.classList.remove("error");
    if (!name) {
      nextStatus.textContent = "enter your name first";
      nextStatus.classList.add("error");
      return;
    }
    var headers = {"Content-Type": "application/json"};
    if (key) { headers["Authorization"] = "Bearer " + key; }
    fetch(apiBase + "/v1/rain/review-queue/next", {
      method: "POST", headers: headers, body: JSON.stringify({reviewer: name})
    }).then(function (resp) {
      return resp.text().then(function (text) {
        if (!resp.ok) { throw new Error(errorText(resp, text)); }
        var record = JSON.parse(text).record;
        if (!record) { nextStatus.textContent = "nothing left to take"; return; }
        var item = document.getElementById("review-" + record.id);
        if (!item) {  /* not among the newest shown: open the page with it on top */
          var there = new URL(window.location.href);
          there.searchParams.set("trace", record.id);
          window.location.href = there.toString();
          return;
        }
        var held = document.getElementById("held-" + record.id);
        if (held) { held.textContent = "held by you"; }
        nextStatus.textContent = "yours: " + record.id;
        item.scrollIntoView();
      });
    }).catch(function (err) {
      nextStatus.textContent = (err && err.message) ? err.message : String(err);
      nextStatus.classList.add("error");
    });
  }
  if (nextButton) { nextButton.addEventListener("click", takeNext); }
})();
"""


def trace_page_path(trace_id: str) -> str:
    """The path of ``trace_id``'s HTML tree page (the id percent-encoded)."""
    return TRACES_PATH + quote(trace_id, safe="") + TRACE_PAGE_SUFFIX


def count_text(n: int) -> str:
    """The header line: "1 answer awaiting review", "0 answers awaiting review"."""
    return f"{n} answer{'' if n == 1 else 's'} awaiting review"


def _badges(rec: TraceRecord) -> str:
    """The answer's warnings (budget-limited, empty) as badges; "" when none."""
    spans = badge_spans(rec)
    return f'<div class="badges">{spans}</div>' if spans else ""


def _links(rec: TraceRecord, api_base: str) -> str:
    """The trace id linking to its HTML tree page (a new tab), then a JSON link."""
    page = escape(api_base + trace_page_path(rec.id), quote=True)
    raw = escape(api_base + TRACES_PATH + quote(rec.id, safe=""), quote=True)
    return (f'<a class="trace-link" href="{page}" target="_blank" rel="noopener">'
            f'{escape(rec.id)}</a> (<a class="trace-json" href="{raw}">JSON</a>)')


def _item(rec: TraceRecord, api_base: str, hold: tuple[str, str] | None) -> str:
    rid = escape(rec.id, quote=True)
    score = score_of(rec)
    pending = rec.review_state == "pending"
    disabled = "" if pending else " disabled"
    note_value = rec.review.note if (rec.review is not None and rec.review.note) else ""
    reviewed = ""
    if rec.review is not None:
        who = f" by {escape(rec.review.reviewer)}" if rec.review.reviewer else ""
        reviewed = (f'<div class="meta">{escape(rec.review.decision)}{who} at '
                    f'{escape(rec.review.decided_at)}</div>')
    policy = ""
    if rec.policy is not None:
        policy = (f' · policy {escape(rec.policy.policy)} (threshold '
                  f'{escape(fmt_num(rec.policy.threshold))}) → {escape(rec.policy.action)}')
    return f"""
<section class="item" id="review-{rid}" data-id="{rid}" data-state="{escape(rec.review_state, quote=True)}">
  <div class="meta">{_links(rec, api_base)} ·
    <span class="created">{escape(rec.created_at)}</span> ·
    score <span class="score">{escape(fmt_num(score))}</span> ·
    model {escape(rec.model)}{policy}
    <span class="held" id="held-{rid}">{_hold_text(hold)}</span></div>
  {_badges(rec)}
  <div class="label">Prompt</div><pre class="prompt">{escape(prompt_text(rec))}</pre>
  <div class="label">Answer</div><pre class="answer">{escape(rec.answer)}</pre>
  {reviewed}
  <div class="controls">
    <input type="text" id="note-{rid}" placeholder="note (optional)" value="{escape(note_value, quote=True)}"{disabled}>
    <button type="button" data-action="approve" data-id="{rid}"{disabled}>Approve</button>
    <button type="button" data-action="reject" data-id="{rid}"{disabled}>Reject</button>
    <span class="status" id="status-{rid}">{escape(rec.review_state)}</span>
  </div>
</section>"""


def _hold_text(hold: tuple[str, str] | None) -> str:
    return "" if hold is None else f"held by {escape(hold[0])} until {escape(hold[1])}"


def queue_text(counts: dict[str, int]) -> str:
    """The store's review counts in one line (the same from every replica)."""
    return (f"Queue: {counts.get('pending', 0)} pending ({counts.get('held', 0)} held by a "
            f"reviewer), {counts.get('approved', 0)} approved, "
            f"{counts.get('rejected', 0)} rejected")


def render_review_page(records: list[TraceRecord], *, api_base: str = "",
                       holds: dict[str, tuple[str, str]] | None = None,
                       counts: dict[str, int] | None = None) -> str:
    """The review page for ``records`` (normally ``store.list(review_state="pending")``).

    ``api_base`` is prefixed to the API paths (e.g. ``"http://127.0.0.1:8000"``; empty:
    same origin). Items not "pending" are shown with their buttons disabled and are not
    counted as awaiting review. ``holds`` (``store.holds``) marks the items a reviewer
    holds; ``counts`` (``store.review_counts``) is shown as the queue's line. A reviewer
    enters a name (kept in the browser), sent with each decision; "Take next" asks the
    store for the oldest item nobody holds and holds it for them.
    """
    base = api_base.rstrip("/")
    holds = holds or {}
    pending = sum(1 for r in records if r.review_state == "pending")
    queue = (f'<p class="meta" id="queue-counts">{escape(queue_text(counts))}</p>'
             if counts is not None else "")
    if records:
        body = "\n".join(_item(r, base, holds.get(r.id)) for r in records)
    else:
        body = '<p class="empty" id="empty">Nothing to review</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rainlm review</title>
<style>{_CSS}</style>
</head>
<body data-api-base="{escape(base, quote=True)}">
<h1>Flagged answers</h1>
<p class="meta" id="count" data-pending="{pending}">{count_text(pending)}</p>
{queue}
<div class="take"><input type="text" id="reviewer" placeholder="your name (reviewer)">
<button type="button" id="take-next">Take next</button>
<span class="status" id="next-status"></span></div>
<main id="queue">
{body}
</main>
<script>{_JS}</script>
</body>
</html>
"""


def render_key_hint_page(path: str = "/review") -> str:
    """The 401 page a browser gets when it opens ``path`` (a read-only page) without the
    server's API key or with a wrong one: how to pass the key. Names no key."""
    where = escape(f"{path}?key=YOUR_KEY")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rainlm: API key needed</title>
<style>{_CSS}</style>
</head>
<body>
<h1>API key needed</h1>
<p id="why">This server was started with an API key (<code>rain serve --api-key KEY</code>
or <code>RAINLM_API_KEY</code>), and this request had none, or a wrong one.</p>
<p id="hint">Open <code>{where}</code>, with the server's key in place of
<code>YOUR_KEY</code>.</p>
<p id="api-hint" class="meta">API clients send the header
<code>Authorization: Bearer KEY</code> instead.</p>
</body>
</html>
"""
