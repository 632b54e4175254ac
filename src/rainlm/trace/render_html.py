"""A trace as one standalone HTML page (inline CSS and JS, no external URLs).

The top shows the request, answer (badged when a budget limited it or it is empty:
``#answer-badges``), scores, policy, review and stats; below, the search
tree as nested ``<details>``: each node ``<li id="node-ID" class="node KIND">`` where
KIND is ``root``, ``committed`` (highlighted: the answer path) or ``rewound`` (dimmed:
explored, then abandoned). Every node with children can be folded. All text from the
model or the request is escaped. Used by ``rain trace html`` and the server
(``GET /v1/rain/traces/{id}/html``, linked from ``/review``).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from rainlm.trace.records import TraceRecord
from rainlm.trace.view import (TreeView, as_record, badge_spans, fmt_num, prompt_text,
                               score_of, tree_view)

__all__ = ["render_tree_html", "OPEN_ALL_MAX_NODES"]

OPEN_ALL_MAX_NODES = 300
"""Trees up to this many nodes open fully; larger ones open only the answer path."""
MAX_EVALUATIONS = 500  # rows of the judged-texts table (the rest are counted)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:75em;padding:0 1em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;margin:.2em 0}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
.meta{color:#555;font-size:.9em}
.badge{display:inline-block;padding:0 .4em;border-radius:4px;background:#eee}
.state-pending{background:#fe9}.state-approved{background:#bfb}.state-rejected{background:#fbb}
.budget-limited{background:#fe9}.cut-off{background:#fcb}.empty-answer{background:#ddd}
.action-refused{background:#fbb}.action-flagged{background:#fe9}.action-passed{background:#bfb}
.tree,.tree ul{list-style:none;margin:0;padding-left:1.3em}
.tree{padding-left:0;overflow-x:auto}
.node>details>summary,.node>.row{cursor:default;padding:1px 0;white-space:nowrap}
.node>details>summary{cursor:pointer}
.tok{font-family:ui-monospace,monospace;background:#f3f3f3;padding:0 .25em;border-radius:3px;white-space:pre}
.stat{font-family:ui-monospace,monospace;font-size:.85em;color:#444;margin-left:.6em}
.pos{color:#17762f}.neg{color:#b1261b}
.committed>details>summary>.tok,.committed>.row>.tok,.root>details>summary>.tok{background:#ffe47a;font-weight:600}
.committed>details>summary,.committed>.row{border-left:3px solid #e0a800;padding-left:.3em}
.rewound{opacity:.55}
.rewound .rewound{opacity:1}
.hide-rewound .rewound{display:none}
.controls button{margin-right:.4em}
.grid{display:flex;flex-wrap:wrap;gap:.2em 1.2em;font-size:.9em;margin-bottom:.4em}
.grid .k{color:#666}
.end{font-size:.8em;color:#777;margin-left:.4em}
"""

_JS = r"""
(function () {
  function all(sel) { return Array.prototype.slice.call(document.querySelectorAll(sel)); }
  var tree = document.getElementById("tree");
  var actions = {
    "expand-all": function () { all("#tree details").forEach(function (d) { d.open = true; }); },
    "collapse-rewound": function () {
      all("#tree .rewound > details").forEach(function (d) { d.open = false; });
    },
    "toggle-rewound": function () { tree.classList.toggle("hide-rewound"); }
  };
  all("button[data-tree-action]").forEach(function (b) {
    b.addEventListener("click", function () { actions[b.getAttribute("data-tree-action")](); });
  });
})();
"""


def _json_pre(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2, ensure_ascii=False, default=str))}</pre>"


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _json_pre(value)
    return escape(fmt_num(value) if isinstance(value, (int, float)) else str(value))


def _table(rows: dict[str, Any], table_id: str) -> str:
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in rows.items())
    return f'<table id="{table_id}">{body}</table>'


def _grid(rows: dict[str, Any], grid_id: str) -> str:
    """Scalars as a compact wrapping grid; nested values (dicts, lists) folded below it."""
    flat = "".join(f'<div><span class="k">{escape(str(k))}</span> {_cell(v)}</div>'
                   for k, v in rows.items() if not isinstance(v, (dict, list)))
    nested = "".join(f"<details><summary>{escape(str(k))}</summary>{_json_pre(v)}</details>"
                     for k, v in rows.items() if isinstance(v, (dict, list)))
    return f'<div class="grid" id="{grid_id}">{flat}</div>{nested}'


def _signed(value: float) -> str:
    cls = "pos" if value > 0 else "neg" if value < 0 else ""
    return f'<span class="{cls}">q={value:+.3f}</span>'


def _node_html(view: TreeView, node_id: int) -> str:
    """The summary line of one node: tokens and statistics."""
    node = view.nodes[node_id]
    kind = view.kind(node_id)
    text = "root" if kind == "root" else (
        node["text"] if node.get("text") is not None else repr(list(node.get("tokens", []))))
    parts = [f'<span class="tok" title="tokens {escape(str(node.get("tokens", [])), quote=True)}">'
             f'{escape(text)}</span>',
             f'<span class="stat">#{node_id}</span>']
    if kind != "root":
        parts.append(f'<span class="stat">p={float(node.get("prior", 0.0)):.3f}</span>')
    parts.append(f'<span class="stat">n={escape(fmt_num(node.get("visits", 0), 2))}</span>')
    parts.append(f'<span class="stat">{_signed(float(node.get("value", 0.0)))}</span>')
    if node.get("terminal"):
        parts.append('<span class="end">[end]</span>')
    return "".join(parts)


def _tree_html(view: TreeView) -> str:
    open_all = len(view.nodes) <= OPEN_ALL_MAX_NODES
    out: list[str] = ['<ul class="tree" id="tree">']
    # iterative walk: ("open", id) renders a node and schedules its children and its close
    stack: list[tuple[str, int]] = [("open", view.top)]
    while stack:
        op, node_id = stack.pop()
        if op == "close":
            out.append("</ul></details></li>")
            continue
        kind = view.kind(node_id)
        kids = view.children(node_id)
        li = f'<li class="node {kind}" id="node-{node_id}" data-kind="{kind}">'
        if not kids:
            out.append(f'{li}<div class="row">{_node_html(view, node_id)}</div></li>')
            continue
        is_open = open_all or kind != "rewound"
        out.append(f'{li}<details{" open" if is_open else ""}><summary>'
                   f'{_node_html(view, node_id)}</summary><ul>')
        stack.append(("close", node_id))
        stack.extend(("open", k) for k in reversed(kids))
    out.append("</ul>")
    return "".join(out)


def _steps_html(trace: dict[str, Any]) -> str:
    steps = trace.get("steps") or []
    if not steps:
        return ""
    head = "<tr><th>step</th><th>committed text</th><th>visits</th><th>value</th><th>searches</th></tr>"
    rows = "".join(
        f"<tr><td>{i}</td><td><span class=\"tok\">{escape(str(s.get('text', '')))}</span></td>"
        f"<td>{escape(fmt_num(s.get('visits'), 2))}</td><td>{_signed(float(s.get('value', 0.0)))}</td>"
        f"<td>{escape(fmt_num(s.get('searches')))}</td></tr>"
        for i, s in enumerate(steps))
    return f'<h2>Committed steps</h2><table id="steps">{head}{rows}</table>'


def _evaluations_html(trace: dict[str, Any]) -> str:
    evals = trace.get("evaluations") or []
    if not evals:
        return ""
    rows = "".join(
        f"<tr><td>{escape(fmt_num(e.get('step')))}</td><td>{_signed(float(e.get('value', 0.0)))}</td>"
        f"<td>{'cached' if e.get('cached') else ''}</td>"
        f"<td><span class=\"tok\">{escape(str(e.get('response', '')))}</span></td></tr>"
        for e in evals[:MAX_EVALUATIONS])
    more = (f"<p class=\"meta\">… {len(evals) - MAX_EVALUATIONS} more not shown</p>"
            if len(evals) > MAX_EVALUATIONS else "")
    return (f"<details><summary>Judged texts ({len(evals)})</summary><table id=\"evaluations\">"
            f"<tr><th>step</th><th>value</th><th></th><th>text</th></tr>{rows}</table>{more}</details>")


def _badges_html(rec: TraceRecord) -> str:
    """The answer's warnings (budget-limited, empty answer) as badges; "" when none."""
    spans = badge_spans(rec)
    return f'<p id="answer-badges">{spans}</p>' if spans else ""


def render_tree_html(record: TraceRecord | dict[str, Any]) -> str:
    """One standalone HTML page explaining ``record`` (a TraceRecord, record dict or
    bare ``GenerationResult.trace()`` dict)."""
    rec: TraceRecord = as_record(record)
    view = tree_view(rec.trace)
    title = f"rainlm trace {rec.id}" if rec.id != "-" else "rainlm trace"
    state = escape(rec.review_state, quote=True)
    meta = " · ".join(escape(x) for x in (rec.created_at, rec.endpoint, f"model {rec.model}",
                                           f"seed {rec.seed}", f"finish {rec.finish_reason}") if x)
    parts = [f"<h1>{escape(title)}</h1>", f'<p class="meta">{meta}</p>']
    if rec.error:
        parts.append(f'<h2>Error</h2><pre id="error">{escape(rec.error)}</pre>')
    parts.append(f'<h2>Prompt</h2><pre id="prompt">{escape(prompt_text(rec))}</pre>')
    parts.append(f'<h2>Answer</h2><pre id="answer">{escape(rec.answer)}</pre>')
    parts.append(_badges_html(rec))

    summary = {"score": fmt_num(score_of(rec)), "review": rec.review_state}
    if rec.policy is not None:
        p = rec.policy
        summary["policy"] = f"{p.policy} (threshold {fmt_num(p.threshold)})"
        summary["action"] = p.action
    parts.append('<h2>Decision</h2><p>'
                 f'<span class="badge state-{state}" id="review-state">review: {escape(rec.review_state)}</span> ')
    if rec.policy is not None:
        parts.append(f'<span class="badge action-{escape(rec.policy.action, quote=True)}" '
                     f'id="policy-action">{escape(rec.policy.action)}</span>')
    parts.append("</p>")
    parts.append(_table(summary, "decision"))
    if rec.policy is not None and rec.policy.original_text is not None:
        parts.append("<h2>Original answer (replaced by the refusal)</h2>"
                     f'<pre id="original">{escape(rec.policy.original_text)}</pre>')
    if rec.review is not None:
        r = rec.review
        parts.append("<h2>Review</h2>" + _table(
            {"decision": r.decision, "reviewer": r.reviewer or "-", "decided at": r.decided_at,
             "note": r.note or ""}, "review"))
    if rec.scores:
        parts.append("<h2>Scores</h2>" + _table(rec.scores, "scores"))
    if rec.stats:
        parts.append("<h2>Stats</h2>" + _grid(rec.stats, "stats"))
    parts.append(f"<details><summary>Request</summary>{_json_pre(rec.request)}</details>")
    if rec.config is not None:
        parts.append(f"<details><summary>Config</summary>{_json_pre(rec.config)}</details>")

    if view is None:
        parts.append('<h2>Search tree</h2><p class="meta">No search tree (greedy decoding, '
                     "or the request failed).</p>")
    else:
        c = view.counts()
        parts.append(
            f'<h2>Search tree</h2><p class="meta">{c["nodes"]} nodes · {c["committed"]} '
            f'committed · {c["rewound"]} rewound. Highlighted: the answer path; dimmed: '
            "rewound branches. p prior, n visits, q value.</p>"
            '<p class="controls"><button type="button" data-tree-action="expand-all">Expand all'
            '</button><button type="button" data-tree-action="collapse-rewound">Collapse '
            'rewound</button><button type="button" data-tree-action="toggle-rewound">Hide/show '
            "rewound</button></p>")
        parts.append(_tree_html(view))
        parts.append(_steps_html(rec.trace or {}))
        parts.append(_evaluations_html(rec.trace or {}))

    body = "\n".join(p for p in parts if p)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{body}
<script>{_JS}</script>
</body>
</html>
"""
