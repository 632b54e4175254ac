"""The installed llama.cpp build is portable (no AMX, no AVX-512 on x86-64, whatever CPU
built it), a decode runs on this CPU, and a crash in a child comes back as a message."""

from __future__ import annotations

import os
import platform
import signal


from rainlm.backends.llamacpp_build import describe_build, probe_decode, probe_outcome
from tests.needs import require_module

PORTABLE_X86 = ("AVX", "AVX2", "FMA", "F16C", "BMI2")


def test_a_crash_in_the_child_is_a_message_naming_the_signal_and_the_fix():
    probe = probe_outcome(-signal.SIGSEGV, "", "")
    assert not probe.ok
    assert "SIGSEGV" in probe.message and "portable instruction set" in probe.message


def test_a_failed_probe_reports_its_last_error_line():
    probe = probe_outcome(1, "", "Traceback (most recent call last):\nValueError: no model")
    assert not probe.ok and probe.message.endswith("ValueError: no model")
    assert probe_outcome(0, "ok\n", "").ok
    assert not probe_outcome(0, "", "").ok  # exited cleanly without decoding: not a pass


def test_a_build_with_amx_is_described_as_the_crashing_one():
    assert "AMX compiled in" in describe_build({"AVX2": True, "AVX512": True, "AMX_INT8": True})
    assert describe_build({"AVX2": True, "AMX_INT8": False}).endswith("(no AVX-512, no AMX)")


def test_the_installed_build_is_portable_and_decodes_here():
    require_module("llama_cpp", part="llama.cpp")
    from rainlm.backends.llamacpp_build import compiled_features

    features = compiled_features()
    assert not any(v for name, v in features.items() if name.startswith("AMX")), features
    if platform.machine() in ("x86_64", "AMD64") and not os.environ.get("CMAKE_ARGS"):
        # scripts/setup's own flags (a user's CMAKE_ARGS may choose AVX-512 or CUDA)
        assert all(features.get(n) for n in PORTABLE_X86), features
        assert not features.get("AVX512"), features
    probe = probe_decode()
    assert probe.ok, probe.message


def test_the_probe_of_a_missing_model_fails_cleanly(tmp_path):
    require_module("llama_cpp", part="llama.cpp")
    probe = probe_decode(str(tmp_path / "no-such.gguf"), timeout_s=60)
    assert not probe.ok and "exit" in probe.message
