"""What the renderers share: reading a record's prompt and score, and the tree's shape.

Input may be a TraceRecord, a record dict (``TraceRecord.to_dict()`` or the server's
JSON) or a bare trace dict (``GenerationResult.trace(detokenize)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from rainlm.result import CUT_OFF_REASONS
from rainlm.trace.records import PolicyDecision, ReviewDecision, TraceRecord

__all__ = ["as_record", "prompt_text", "score_of", "first_line", "TreeView", "tree_view",
           "fmt_num", "node_label", "Badge", "answer_badges", "badge_spans", "CUT_OFF_REASONS"]



def as_record(obj: TraceRecord | dict[str, Any]) -> TraceRecord:
    """A TraceRecord from a record, a record dict, or a bare trace dict."""
    if isinstance(obj, TraceRecord):
        return obj
    if not isinstance(obj, dict):
        raise TypeError(f"expected a TraceRecord or a dict, got {type(obj).__name__}")
    if "tree" in obj and "endpoint" not in obj:  # a bare GenerationResult.trace() dict
        messages = obj.get("messages") or []
        return TraceRecord(
            id="-", created_at="", endpoint="", request={"messages": messages},
            model=str(obj.get("model", "")), config=obj.get("config"), seed=obj.get("seed"),
            answer=str(obj.get("text", "")), finish_reason=str(obj.get("finish_reason", "")),
            stats=dict(obj.get("stats") or {}), trace=obj)
    data = dict(obj)
    if isinstance(data.get("policy"), dict):
        data["policy"] = PolicyDecision(**data["policy"])
    if isinstance(data.get("review"), dict):
        data["review"] = ReviewDecision(**data["review"])
    return TraceRecord(**data)


def prompt_text(rec: TraceRecord) -> str:
    """The user's prompt: the last user message (chat) or the ``prompt`` (completions)."""
    request = rec.request or {}
    messages = request.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        chosen = users[-1] if users else (messages[-1] if messages else None)
        if isinstance(chosen, dict):
            content = chosen.get("content", "")
            if isinstance(content, list):  # OpenAI content parts
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    prompt = request.get("prompt")
    if isinstance(prompt, list):
        return "\n".join(str(p) for p in prompt)
    return "" if prompt is None else str(prompt)


def score_of(rec: TraceRecord) -> float | None:
    """The final answer's self-evaluation score (scores["value"], else the policy's)."""
    value = (rec.scores or {}).get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if rec.policy is not None and rec.policy.score is not None:
        return float(rec.policy.score)
    return None


def first_line(text: str, width: int = 60) -> str:
    """The first non-empty line of ``text``, cut to ``width`` characters with "…"."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def fmt_num(x: Any, digits: int = 3) -> str:
    """Counts without decimals when whole (``12``), else ``digits`` decimals."""
    if x is None:
        return "-"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.{digits}f}"


@dataclass(frozen=True)
class Badge:
    """A warning shown next to an answer (the renderers escape every field)."""

    css: str
    """CSS classes, e.g. ``"budget-limited cut-off"`` or ``"empty-answer"``."""
    label: str
    """The visible text, e.g. ``"budget-limited: finished greedily"``."""
    detail: str
    """A longer explanation (shown as the badge's tooltip)."""


def _budget_badge(rec: TraceRecord) -> Badge | None:
    """The badge of an answer whose search a budget (or a stop) ended, else None."""
    stats = rec.stats or {}
    cut = rec.finish_reason in CUT_OFF_REASONS
    if not cut and not stats.get("budget_exhausted"):
        return None
    if rec.finish_reason == "stopped":
        return Badge("budget-limited cut-off", "stopped: cut off",
                     "the search was stopped (server shutdown); the answer is cut off there")
    tail = stats.get("greedy_tail_tokens")
    tail = tail if isinstance(tail, int) and not isinstance(tail, bool) else 0
    which = (f"the {rec.finish_reason.split('_')[0]} budget"
             if rec.finish_reason in ("time_budget", "search_budget") else "a budget")
    if tail > 0 and stats.get("greedy_tail_cut") is True:
        return Badge("budget-limited cut-off", "budget-limited: cut off",
                     f"{which} ran out; {tail} tokens were added greedily (not searched) "
                     "before the time budget ended, and the answer is cut off there")
    if tail > 0:
        return Badge("budget-limited finished-greedily", "budget-limited: finished greedily",
                     f"{which} ran out; the last {tail} tokens were finished greedily "
                     "(not searched)")
    if cut:
        return Badge("budget-limited cut-off", "budget-limited: cut off",
                     f"{which} ran out; the answer is cut off there")
    return Badge("budget-limited", "budget-limited",
                 f"a budget ran out during the search; the answer ended ({rec.finish_reason}) "
                 "on what the search had found")


def answer_badges(rec: TraceRecord) -> list[Badge]:
    """Warnings about ``rec``'s answer: budget-limited (cut off or finished greedily)
    and empty (nothing but whitespace)."""
    badges = [b for b in (_budget_badge(rec),) if b is not None]
    if not (rec.answer or "").strip():
        badges.append(Badge("empty-answer", "empty answer",
                            "the answer is empty (or only whitespace)"))
    return badges


def badge_spans(rec: TraceRecord) -> str:
    """``answer_badges(rec)`` as HTML: ``<span class="badge CSS" title="DETAIL">LABEL</span>``
    each (escaped), separated by spaces; "" when there is none."""
    return " ".join(f'<span class="badge {escape(b.css, quote=True)}" '
                    f'title="{escape(b.detail, quote=True)}">{escape(b.label)}</span>'
                    for b in answer_badges(rec))


def node_label(node: dict[str, Any]) -> str:
    """A node's token text, repr-quoted (its token ids when the trace has no text)."""
    if "text" in node and node["text"] is not None:
        return repr(node["text"])
    return repr(list(node.get("tokens", [])))


@dataclass
class TreeView:
    """The tree of a trace dict, indexed for drawing."""

    nodes: dict[int, dict[str, Any]]
    """Node id -> node dict (id, parent, tokens, text, prior, visits, value, children)."""
    top: int
    """The first root (id 0 unless the trace says otherwise)."""
    root: int
    """The root when the answer ended (the last committed node)."""
    committed: list[int]
    """Committed node ids in order (the answer path below ``top``)."""
    on_path: set[int] = field(default_factory=set)
    """``top`` and the committed nodes: the path the answer took."""

    def kind(self, node_id: int) -> str:
        """"root", "committed" or "rewound" (explored but not on the answer path)."""
        if node_id == self.top:
            return "root"
        return "committed" if node_id in self.on_path else "rewound"

    def children(self, node_id: int) -> list[int]:
        return [c for c in self.nodes[node_id].get("children", []) if c in self.nodes]

    def counts(self) -> dict[str, int]:
        rewound = sum(1 for i in self.nodes if self.kind(i) == "rewound")
        return {"nodes": len(self.nodes), "committed": len(self.committed), "rewound": rewound}


def tree_view(trace: dict[str, Any] | None) -> TreeView | None:
    """The TreeView of ``trace["tree"]``; None when there is no tree (greedy, failed)."""
    tree = (trace or {}).get("tree")
    if not tree or not tree.get("nodes"):
        return None
    nodes = {int(n["id"]): n for n in tree["nodes"]}
    tops = [i for i, n in nodes.items() if n.get("parent", -1) == -1]
    top = tops[0] if tops else min(nodes)
    committed = [int(c) for c in tree.get("committed", []) if int(c) in nodes]
    return TreeView(nodes=nodes, top=top, root=int(tree.get("root", top)), committed=committed,
                    on_path={top, *committed})
