"""A trace as plain text: a header (request, answer, policy, review, stats) and the tree.

Each tree line is ``MARK #ID TEXT  p=PRIOR  n=VISITS  q=VALUE`` indented two spaces per
level, where MARK is ``*`` on the answer path (the first root and every committed node)
and ``-`` on a rewound branch (explored, then abandoned), TEXT is the node's token text
repr-quoted, and ``[end]`` marks a terminal node. Used by ``rain trace show``.
"""

from __future__ import annotations

from typing import Any

from rainlm.trace.records import TraceRecord
from rainlm.trace.view import (TreeView, as_record, first_line, fmt_num, node_label,
                               prompt_text, score_of, tree_view)

__all__ = ["render_tree_text", "node_line", "STAT_KEYS"]

STAT_KEYS = ("searches", "steps", "evaluations", "evaluation_cache_hits", "model_calls",
             "nodes_created", "answer_tokens", "wall_time_s", "queue_s", "total_s")
"""The stats shown in the header, in this order, when present."""

MARKS = {"root": "*", "committed": "*", "rewound": "-"}


def node_line(view: TreeView, node_id: int) -> str:
    """One node without indentation, e.g. ``* #2 ' I'  p=0.350  n=12  q=+1.000``."""
    node = view.nodes[node_id]
    kind = view.kind(node_id)
    label = "root" if kind == "root" else node_label(node)
    parts = [f"{MARKS[kind]} #{node_id} {label}"]
    if kind != "root":
        parts.append(f"p={float(node.get('prior', 0.0)):.3f}")
    parts.append(f"n={fmt_num(node.get('visits', 0), 2)}")
    parts.append(f"q={float(node.get('value', 0.0)):+.3f}")
    if node.get("terminal"):
        parts.append("[end]")
    return "  ".join(parts)


def _header(rec: TraceRecord, view: TreeView | None) -> list[str]:
    lines = []
    ident = [x for x in (rec.id if rec.id != "-" else "", rec.created_at, rec.endpoint,
                         f"model {rec.model}" if rec.model else "") if x]
    lines.append("trace " + " · ".join(ident) if ident else "trace")
    lines.append(f"prompt:  {prompt_text(rec)!r}")
    lines.append(f"answer:  {rec.answer!r}")
    lines.append(f"finish:  {rec.finish_reason or '-'}")
    score = score_of(rec)
    scoring = (rec.scores or {}).get("scoring")
    lines.append(f"score:   {fmt_num(score)}" + (f" ({scoring})" if scoring else ""))
    if rec.policy is not None:
        p = rec.policy
        lines.append(f"policy:  {p.policy}, threshold {fmt_num(p.threshold)} -> {p.action}")
        if p.original_text is not None:
            lines.append(f"         original answer: {p.original_text!r}")
    else:
        lines.append("policy:  -")
    review = rec.review_state
    if rec.review is not None:
        r = rec.review
        review += f" ({r.decision}" + (f" by {r.reviewer}" if r.reviewer else "") + \
            f" at {r.decided_at}" + (f": {first_line(r.note, 80)!r}" if r.note else "") + ")"
    lines.append(f"review:  {review}")
    if rec.error:
        lines.append(f"error:   {rec.error}")
    stats = rec.stats or {}
    shown = [f"{k} {fmt_num(stats[k])}" for k in STAT_KEYS if k in stats]
    if shown:
        lines.append("stats:   " + " · ".join(shown))
    if view is not None:
        c = view.counts()
        lines.append(f"tree:    {c['nodes']} nodes · {c['committed']} committed · "
                     f"{c['rewound']} rewound   (* answer path, - rewound; "
                     f"p prior, n visits, q value)")
    return lines


def render_tree_text(record_or_trace: TraceRecord | dict[str, Any], *,
                     max_depth: int | None = None, min_visits: float = 0.0) -> str:
    """The record (or bare trace dict) as text: header, blank line, the search tree.

    Args:
        record_or_trace: a TraceRecord, a record dict, or ``GenerationResult.trace()``.
        max_depth: hide rewound nodes deeper than this many levels below the first
            root (the answer path is always shown); None shows every level.
        min_visits: hide rewound nodes with fewer visits than this.
    Hidden nodes are counted on a ``… N more nodes not shown`` line under their parent.
    """
    rec = as_record(record_or_trace)
    view = tree_view(rec.trace)
    lines = _header(rec, view)
    lines.append("")
    if view is None:
        lines.append("(no search tree: greedy decoding, or the request failed)")
        return "\n".join(lines) + "\n"

    def hidden(node_id: int, depth: int) -> bool:
        if node_id in view.on_path:
            return False
        if max_depth is not None and depth > max_depth:
            return True
        return float(view.nodes[node_id].get("visits", 0.0)) < min_visits

    def subtree_size(node_id: int) -> int:
        size, stack = 0, [node_id]
        while stack:
            current = stack.pop()
            size += 1
            stack.extend(view.children(current))
        return size

    # iterative depth-first walk: (node id, depth) or a ("more", count, depth) summary
    stack: list[tuple[Any, ...]] = [("node", view.top, 0)]
    while stack:
        item = stack.pop()
        if item[0] == "more":
            _, count, depth = item
            lines.append(f"{'  ' * depth}… {count} more node{'s' if count != 1 else ''} not shown")
            continue
        _, node_id, depth = item
        lines.append("  " * depth + node_line(view, node_id))
        kids = view.children(node_id)
        shown = [k for k in kids if not hidden(k, depth + 1)]
        n_hidden = sum(subtree_size(k) for k in kids if hidden(k, depth + 1))
        if n_hidden:
            stack.append(("more", n_hidden, depth + 1))
        stack.extend(("node", k, depth + 1) for k in reversed(shown))
    return "\n".join(lines) + "\n"
