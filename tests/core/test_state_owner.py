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
STATE = r"(^|\.)(tree|state|nodes?|child|sib)(\b|\[)|\.nodes\[|^(best|node)\b"
"""What a search-state object looks like in an expression: ``ctx.tree…``,
``ctx.state…``, ``tree.nodes[i]…``, a ``node`` read from the tree; names bound to
such an expression in the same file (``memory = ctx.state``) count too."""
MUTATORS = {"append", "add", "pop", "clear", "update", "extend", "remove", "insert",
            "setdefault", "popitem", "discard", "sort", "reverse", "add_child"}
OWNER_ONLY_CALLS = {"backup", "add_child_and_renormalize", "remember_imagined"}
STATE_ATTRIBUTES = {"state", "tree"}
"""Attributes that are the state itself: ``ctx.state = …`` replaces it (and nothing
is set on the search context ``ctx`` itself: its inputs are fixed once built)."""


def _aliases(tree: ast.AST) -> set[str]:
    """Names bound to a state object by a plain attribute or item read (not a call)."""
    pattern = re.compile(STATE)
    found: set[str] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, (ast.Attribute, ast.Subscript))
                and pattern.search(ast.unparse(node.value))):
            found.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return found


def _flat(targets: list[ast.expr]) -> list[ast.expr]:
    out: list[ast.expr] = []
    for t in targets:
        out.extend(_flat(list(t.elts)) if isinstance(t, (ast.Tuple, ast.List)) else
                   [t.value] if isinstance(t, ast.Starred) else [t])
    return out


def writes_to_state(source: str) -> list[str]:
    """Every statement of ``source`` that changes something that looks like search state
    in place: an assignment to one of its attributes or items (or of the state itself),
    ``del`` of one, a mutating method or ``setattr`` called on it, or a call of the
    statistics arithmetic."""
    tree = ast.parse(source)
    names = _aliases(tree)
    pattern = re.compile(STATE + (rf"|^({'|'.join(sorted(names))})\b" if names else ""))

    def is_state(expr: ast.expr) -> bool:
        return bool(pattern.search(ast.unparse(expr)))

    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = _flat(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
            targets = _flat([node.target])
        elif isinstance(node, ast.Delete):
            targets = _flat(node.targets)
        for t in targets:
            if isinstance(t, (ast.Attribute, ast.Subscript)) and (
                    is_state(t.value) or (isinstance(t, ast.Attribute) and (
                        t.attr in STATE_ATTRIBUTES or ast.unparse(t.value) == "ctx"))):
                found.append(f"line {node.lineno}: {ast.unparse(t)[:80]}")
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr in MUTATORS and is_state(func.value)
                    and not ast.unparse(func.value).endswith("state")):  # (the owner's methods)
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in OWNER_ONLY_CALLS:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
            if called in ("setattr", "__setattr__") and node.args and any(is_state(a) for a in node.args[:2]):
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
    "widening.add_child_and_renormalize(tree, 0, (1,), 0.5, is_root=True, root_mix=0.2)",
    "ctx.tree.add_child(0, (1,), 1.0, 1.0)",
    "n = ctx.tree.nodes[i]\nn.visits += 1",
    "memory = ctx.state\nmemory.eval_cache[k] = v",
    "ctx.state = SearchState()",
    "setattr(ctx.state, 'best_answer', None)",
    "[tree.root, a] = x",
    "for tree.root in ids: pass",
    "tree.committed.sort()",
    "ctx.state.tree.add_child(0, (1,), 1.0, 1.0)",
    "ctx.repair_attempts += 1",
])
def test_the_check_sees_a_write(snippet):
    assert writes_to_state(snippet)


@pytest.mark.parametrize("snippet", [
    "ctx.state.set_best_answer(1.0, ids)", "ctx.stats.searches += 1",
    "best = ctx.state.best_answer", "ctx.calls.deadline = None", "paths.append(path)",
    "kids = tree.child_ids(0)\nkids.append(3)", "cfg = ctx.config\ncfg2 = cfg.replace(c_puct=1)",
])
def test_the_check_passes_reads_and_counters(snippet):
    assert writes_to_state(snippet) == []


def test_only_the_state_changes_the_search_state():
    assert len(READERS) >= 15  # the search's modules were read
    bad = {p.name: w for p in READERS if (w := writes_to_state(p.read_text(encoding="utf-8")))}
    assert bad == {}, f"search state changed outside core/state.py: {bad}"
