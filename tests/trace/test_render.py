"""Text and HTML rendering of a search tree: a hand-checked tree, then real searches."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from rainlm.trace.records import PolicyDecision, TraceRecord
from rainlm.trace.render_html import render_tree_html
from rainlm.trace.render_text import render_tree_text

from .helpers import make_record


def _node(i, parent, text, prior, visits, value, children, terminal=False):
    return {"id": i, "parent": parent, "tokens": [100 + i], "depth": 0, "prior": prior,
            "visits": visits, "real_visits": int(visits), "value": value,
            "terminal": terminal, "children": children, "text": text}


# root 0 -> " I"(1, committed) -> " can't"(3, committed, end)
#        -> " Sure"(2, rewound) -> " here"(4, rewound)
#        " I"(1) -> " help"(5, rewound, 0.5 visits)
SMALL_TRACE = {
    "version": 1, "method": "rain", "model": "hand", "seed": 3,
    "messages": [{"role": "user", "content": "Q?"}], "config": None,
    "text": " I can't", "finish_reason": "eos", "stats": {"searches": 7, "wall_time_s": 0.25},
    "steps": [{"tokens": [101], "text": " I", "visits": 4.0, "value": 0.5, "searches": 5},
              {"tokens": [103], "text": " can't", "visits": 2.0, "value": 1.0, "searches": 2}],
    "evaluations": [{"search": 0, "step": 0, "response": " Sure here", "value": -1.0,
                     "cached": False}],
    "tree": {"root": 3, "committed": [1, 3], "q_min": -1.0, "q_max": 1.0, "nodes": [
        _node(0, -1, "", 1.0, 7.0, 0.142857, [2, 1]),
        _node(1, 0, " I", 0.3, 4.0, 0.5, [3, 5]),
        _node(2, 0, " Sure", 0.7, 3.0, -1.0, [4]),
        _node(3, 1, " can't", 1.0, 2.0, 1.0, [], terminal=True),
        _node(4, 2, " here", 1.0, 2.0, -1.0, []),
        _node(5, 1, " help", 0.25, 0.5, 0.0, []),
    ]},
}

TREE_LINES = [
    "* #0 root  n=7  q=+0.143",
    "  - #2 ' Sure'  p=0.700  n=3  q=-1.000",
    "    - #4 ' here'  p=1.000  n=2  q=-1.000",
    "  * #1 ' I'  p=0.300  n=4  q=+0.500",
    "    * #3 \" can't\"  p=1.000  n=2  q=+1.000  [end]",
    "    - #5 ' help'  p=0.250  n=0.50  q=+0.000",
]


def _record(**kw):
    base = dict(id="tr_small", created_at="2026-02-03T04:05:06+00:00",
                endpoint="/v1/chat/completions",
                request={"messages": [{"role": "user", "content": "Q?"}]}, model="hand",
                config=None, seed=3, answer=" I can't", finish_reason="eos",
                scores={"value": -0.25, "scoring": "paper"}, stats={"searches": 7},
                trace=SMALL_TRACE,
                policy=PolicyDecision("flag", 0.0, -0.25, "flagged"), review_state="pending")
    base.update(kw)
    return TraceRecord(**base)


# ------------------------------------------------------------------------- text
def test_text_tree_exact_lines():
    text = render_tree_text(_record())
    head, tree = text.split("\n\n", 1)
    assert tree.splitlines() == TREE_LINES
    assert head.splitlines() == [
        "trace tr_small · 2026-02-03T04:05:06+00:00 · /v1/chat/completions · model hand",
        "prompt:  'Q?'",
        "answer:  \" I can't\"",
        "finish:  eos",
        "score:   -0.250 (paper)",
        "policy:  flag, threshold 0 -> flagged",
        "review:  pending",
        "stats:   searches 7",
        "tree:    6 nodes · 2 committed · 3 rewound   (* answer path, - rewound; "
        "p prior, n visits, q value)",
    ]


def test_text_from_bare_trace_dict_and_record_dict():
    tree_part = render_tree_text(SMALL_TRACE).split("\n\n", 1)[1]
    assert tree_part.splitlines() == TREE_LINES
    assert render_tree_text(_record().to_dict()) == render_tree_text(_record())


def test_text_max_depth_and_min_visits_keep_the_answer_path():
    tree = render_tree_text(_record(), max_depth=1).split("\n\n", 1)[1].splitlines()
    assert tree == [TREE_LINES[0], TREE_LINES[1], "    … 1 more node not shown",
                    TREE_LINES[3], TREE_LINES[4], "    … 1 more node not shown"]
    tree = render_tree_text(_record(), min_visits=3).split("\n\n", 1)[1].splitlines()
    assert tree == [TREE_LINES[0], TREE_LINES[1], "    … 1 more node not shown",
                    TREE_LINES[3], TREE_LINES[4], "    … 1 more node not shown"]
    tree = render_tree_text(_record(), max_depth=0).split("\n\n", 1)[1].splitlines()
    assert tree == [TREE_LINES[0], TREE_LINES[3], TREE_LINES[4], "    … 1 more node not shown",
                    "  … 2 more nodes not shown"]


def test_text_without_tree_and_with_review():
    from rainlm.trace.records import ReviewDecision

    rec = _record(trace=None, review_state="rejected",
                  review=ReviewDecision("rejected", "bad\nreally", "ana", "2026-02-04T00:00:00+00:00"),
                  policy=PolicyDecision("refuse", 0.1, -0.5, "refused", original_text="harm"))
    text = render_tree_text(rec)
    assert "review:  rejected (rejected by ana at 2026-02-04T00:00:00+00:00: 'bad')" in text
    assert "policy:  refuse, threshold 0.100 -> refused" in text
    assert "original answer: 'harm'" in text
    assert "(no search tree" in text


def test_text_on_real_search_marks_every_committed_node():
    rec = make_record("tr_real", kind="branching")
    committed = rec.trace["tree"]["committed"]
    lines = render_tree_text(rec).split("\n\n", 1)[1].splitlines()
    starred = [int(re.search(r"#(\d+)", ln).group(1)) for ln in lines if ln.lstrip().startswith("*")]
    assert starred == [0, *committed]
    assert len(lines) == len(rec.trace["tree"]["nodes"])
    # the committed texts, in order, spell the answer
    nodes = {n["id"]: n for n in rec.trace["tree"]["nodes"]}
    assert "".join(nodes[c]["text"] for c in committed) == rec.answer


# ------------------------------------------------------------------------- HTML
class Nodes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.li: dict[str, str] = {}
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "li" and (a.get("id") or "").startswith("node-"):
            self.li[a["id"]] = a["class"]
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(a[key])


def test_html_marks_committed_and_rewound_nodes():
    page = render_tree_html(_record())
    p = Nodes()
    p.feed(page)
    assert p.li == {"node-0": "node root", "node-1": "node committed",
                    "node-2": "node rewound", "node-3": "node committed",
                    "node-4": "node rewound", "node-5": "node rewound"}
    assert p.scripts == 1 and p.external == []
    assert "q=-1.000" in page and "p=0.700" in page and "n=0.50" in page
    assert page.count("<details") >= 3  # foldable nodes (0, 1, 2) plus page sections


def test_html_escapes_model_output():
    evil = '<script>alert("pwned")</script>'
    trace = {**SMALL_TRACE, "tree": {**SMALL_TRACE["tree"], "nodes": [
        {**n, "text": evil} if n["id"] == 4 else n for n in SMALL_TRACE["tree"]["nodes"]]}}
    rec = _record(answer=evil, trace=trace,
                  request={"messages": [{"role": "user", "content": "<img src=x onerror=1>"}]},
                  error="<b>oops</b>")
    page = render_tree_html(rec)
    assert evil not in page and "<img" not in page and "<b>oops" not in page
    assert page.count("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;") >= 2
    assert len(re.findall(r"<script\b", page)) == 1


def test_html_real_search_and_no_tree():
    rec = make_record("tr_real", kind="branching")
    p = Nodes()
    p.feed(render_tree_html(rec))
    nodes = rec.trace["tree"]["nodes"]
    assert len(p.li) == len(nodes)
    committed = {f"node-{c}" for c in rec.trace["tree"]["committed"]}
    assert {k for k, v in p.li.items() if "committed" in v} == committed
    assert sum("rewound" in v for v in p.li.values()) == len(nodes) - len(committed) - 1
    page = render_tree_html(_record(trace=None))
    assert "No search tree" in page


@pytest.mark.parametrize("render", [render_tree_text, render_tree_html])
def test_deep_tree_does_not_recurse(render):
    n = 3000  # a chain deeper than Python's recursion limit
    nodes = [_node(i, i - 1, f" t{i}", 1.0, 1.0, 0.0, [i + 1] if i + 1 < n else []) for i in range(n)]
    trace = {**SMALL_TRACE, "tree": {"root": n - 1, "committed": list(range(1, n)),
                                      "nodes": nodes}}
    out = render(_record(trace=trace))
    assert "t2999" in out


def test_html_badges_a_budget_limited_or_empty_answer():
    plain = make_record("tr_plain")
    assert 'id="answer-badges"' not in render_tree_html(plain)
    greedy = make_record("tr_g", finish_reason="time_budget",
                         stats={**plain.stats, "budget_exhausted": True, "greedy_tail_tokens": 2})
    page = render_tree_html(greedy)
    assert re.search(r'<p id="answer-badges"><span class="badge budget-limited finished-greedily" '
                     r'title="[^"]*last 2 tokens[^"]*">budget-limited: finished greedily</span></p>',
                     page)
    page = render_tree_html(make_record("tr_c", finish_reason="search_budget", answer=""))
    assert ">budget-limited: cut off</span>" in page and ">empty answer</span>" in page
