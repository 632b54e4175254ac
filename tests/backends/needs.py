"""Skip-or-fail rule for tests of optional engines (llama.cpp, ...).

``require_module(name, env_var)`` imports ``name``; when that fails the test module is
skipped, unless ``env_var`` is set to 1 in the environment (CI sets it where the engine
is installed), in which case the tests fail with the reason.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require_module(name: str, env_var: str):
    """The imported module ``name``, or skip (fail when ``$env_var`` is "1")."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = f"{name} is not importable ({exc})"
        if os.environ.get(env_var) == "1":
            pytest.fail(f"{msg}, but {env_var}=1 requires it: install it (for llama_cpp: "
                        f"pip install 'rainlm[llamacpp]').", pytrace=False)
        pytest.skip(f"{msg}; set {env_var}=1 to make this a failure.", allow_module_level=True)
