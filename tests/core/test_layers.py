"""The import graph points one way: cli/serve/bench → request → api → core ← the
interfaces of backends/judge/similarity (read from the source, every import, function
level included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "rainlm"

FRONT_ENDS = ("cli", "serve", "bench", "distill", "pilot")
"""Packages that present the library: nothing below them may import them."""
BUILT_ON = {"pilot": ("bench",)}
"""Front ends made of another's measurements: a pilot is the bench's methods and
metrics run on a company's prompts and policy (cli → pilot → bench → request)."""
BELOW_REQUEST = ("api", "core", "backends", "judge", "similarity", "config", "result", "fluency",
                 "messages", "errors")
"""What the request layer (``rainlm.request``) stands on."""
CORE_INTERFACES = ("rainlm.backends.base", "rainlm.backends.decoding",
                   "rainlm.backends.distribution", "rainlm.backends.steps",
                   "rainlm.judge.base", "rainlm.similarity.base")
"""The only modules of backends/judge/similarity the search core may import: the
interfaces it calls (``backends.decoding``: the contract's continuation primitive and
its default on ``next_logprobs``), never an implementation."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every ``rainlm`` module ``path`` imports, at any level of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "rainlm" or name.startswith("rainlm.")}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


GRAPH = {module_name(p): imports_of(p) for p in sorted(SRC.rglob("*.py"))}


def violations(allowed) -> list[str]:
    return sorted(f"{src} imports {dst}" for src, targets in GRAPH.items()
                  for dst in targets if not allowed(src, dst))


def test_the_graph_was_read():
    # guards the other tests against reading nothing (a moved source folder)
    assert "rainlm.request" in GRAPH and "rainlm.cli.generate" in GRAPH
    assert "rainlm.request" in GRAPH["rainlm.cli.generate"]


@pytest.mark.parametrize("front", FRONT_ENDS)
def test_nothing_outside_a_front_end_imports_it(front):
    # cli may use the others (rain serve, rain bench, rain distill, rain pilot); serve,
    # bench and distill stand side by side and never import cli, nor does anything below
    # them; a pilot is built on the bench (BUILT_ON), never the other way
    def allowed(src: str, dst: str) -> bool:
        if package_of(dst) != front or package_of(src) == front:
            return True
        return package_of(src) == "cli" or front in BUILT_ON.get(package_of(src), ())

    assert violations(allowed) == []


def test_the_request_layer_and_below_import_no_front_end():
    def allowed(src: str, dst: str) -> bool:
        below = src == "rainlm.request" or package_of(src) in BELOW_REQUEST
        return not (below and package_of(dst) in FRONT_ENDS)

    assert violations(allowed) == []


def test_nothing_below_the_request_layer_imports_it():
    def allowed(src: str, dst: str) -> bool:
        return not (package_of(src) in BELOW_REQUEST and package_of(dst) == "request")

    assert violations(allowed) == []


def test_the_core_imports_only_interfaces_and_nothing_above_it():
    def allowed(src: str, dst: str) -> bool:
        if package_of(src) != "core":
            return True
        if package_of(dst) in ("core", "config", "errors"):
            return True
        return any(dst == i or dst.startswith(i + ".") for i in CORE_INTERFACES)

    assert violations(allowed) == []


def test_backends_judges_and_encoders_do_not_import_the_search_or_the_api():
    def allowed(src: str, dst: str) -> bool:
        if package_of(src) not in ("backends", "judge", "similarity"):
            return True
        return package_of(dst) not in ("core", "api", "request", "result")

    assert violations(allowed) == []


def test_no_module_imports_itself_through_others():
    # function-level imports count: deferring an import does not undo a cycle
    modules = {m for m in GRAPH if m != "rainlm"}  # the package only re-exports lazily
    edges = {m: sorted(d for d in GRAPH[m] if d in modules and d != m) for m in modules}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in edges[module]:
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert cycles == []


ANSWERING = ("rainlm.api.generate", "rainlm.api.generate_many", "rainlm.api.greedy",
             "rainlm.generate", "rainlm.generate_many", "rainlm.greedy",
             "rainlm.judge.self_eval.score_final_answers")
"""What answers or scores below the request layer (the package re-exports two lazily)."""


def test_front_ends_answer_only_through_the_request_layer():
    # one path from a front end to an answer: rainlm.request.answer (and its scoring)
    def allowed(src: str, dst: str) -> bool:
        return not (package_of(src) in FRONT_ENDS and dst in ANSWERING)

    assert violations(allowed) == []
    # nor as attributes: ``import rainlm`` then ``rainlm.generate(...)``
    used = sorted(f"{module_name(p)} uses rainlm.{node.attr}"
                  for p in sorted(SRC.rglob("*.py")) if package_of(module_name(p)) in FRONT_ENDS
                  for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "rainlm" and f"rainlm.{node.attr}" in ANSWERING)
    assert used == []
