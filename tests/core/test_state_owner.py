"""One object owns the changes to the search's state (``core/state.py``): every other
module of the search reads the tree, the whole answers, the judged texts and the clock,
and changes them only through ``SearchState``'s methods (read from the source)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "rainlm"
OWNERS = {"state.py", "tree.py", "backup.py", "widening.py"}
"""``state.py`` owns the changes; ``tree.py`` is the arena (its own ``add_child``), and
``backup.py`` and ``widening.py`` the statistics arithmetic that only the owner calls."""
READERS = sorted(p for p in (SRC / "core").glob("*.py") if p.name not in OWNERS) + [SRC / "api.py"]
STATE = re.compile(r"(^|\.)(tree|state|nodes?|root_node|child|sib)(\b|\[)|\.nodes\[|^(best|node)\b")
"""What a search-state object looks like in an expression: ``ctx.tree…``,
``ctx.state…``, ``tree.nodes[i]…``, a ``node`` read from the tree."""
MUTATORS = {"append", "add", "pop", "clear", "update", "extend", "remove", "insert",
            "setdefault", "popitem", "discard"}
OWNER_ONLY_CALLS = {"backup", "add_child_and_renormalize", "remember_imagined"}


def writes_to_state(source: str) -> list[str]:
    """Every statement of ``source`` that changes something that looks like search state
    in place: an assignment to one of its attributes or items, ``del`` of one, a
    mutating method called on it, or a call of the statistics arithmetic."""
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for tgt in node.targets
                       for t in (tgt.elts if isinstance(tgt, ast.Tuple) else [tgt])]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for t in targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)) and STATE.search(ast.unparse(t.value)):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in MUTATORS
                    and STATE.search(ast.unparse(func.value))):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
            if isinstance(func, ast.Name) and func.id in OWNER_ONLY_CALLS:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
    return found


@pytest.mark.parametrize("snippet", [
    "ctx.state.best_answer = (1.0, ids)",
    "ctx.tree.nodes[3].visits += 1",
    "node.pool.pop(0)",
    "tree.committed.append(7)",
    "del ctx.tree.committed[2:]",
    "ctx.state.eval_cache[key] = 1.0",
    "tree.root, a = at_budget",
    "backup(ctx.tree, path, 1.0, None, threshold=0.9, weight=0.2)",
])
def test_the_check_sees_a_write(snippet):
    assert writes_to_state(snippet)


@pytest.mark.parametrize("snippet", [
    "ctx.state.set_best_answer(1.0, ids)", "ctx.stats.searches += 1",
    "best = ctx.state.best_answer", "ctx.calls.deadline = None", "paths.append(path)",
])
def test_the_check_passes_reads_and_counters(snippet):
    assert writes_to_state(snippet) == []


def test_only_the_state_changes_the_search_state():
    assert len(READERS) >= 15  # the search's modules were read
    bad = {p.name: w for p in READERS if (w := writes_to_state(p.read_text(encoding="utf-8")))}
    assert bad == {}, f"search state changed outside core/state.py: {bad}"
