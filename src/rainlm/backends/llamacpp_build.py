"""Which llama.cpp build is installed, and whether it runs on this CPU.

llama.cpp's native build (``GGML_NATIVE=ON``) compiles kernels for the build machine's
own CPU; on Intel AMX machines (Sapphire Rapids class, virtualised) its AMX kernel
crashes the process on the first decode (ggml-org/llama.cpp#20824). ``scripts/setup``
builds a portable instruction set instead; this module reports what the installed build
holds and runs one decode in a *child* process, so a crash is a message, not a dead
caller::

    python -m rainlm.backends.llamacpp_build          # features; a decode probe
    python -m rainlm.backends.llamacpp_build --probe  # exit 1 when the probe fails
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["ProbeResult", "compiled_features", "describe_build", "probe_decode"]

PROBE_TIMEOUT_S = 120.0
PORTABLE_HINT = ("rebuild llama-cpp-python for a portable instruction set (docs/engines.md, "
                 "'The llama.cpp build'; in a checkout: rm .venv/.rainlm-installed-engines; "
                 "unset CMAKE_ARGS; scripts/setup --engines)")
_PROBE_CODE = """
import llama_cpp, sys
from rainlm.backends.embedded import embedded_model_path
llm = llama_cpp.Llama(model_path=str(sys.argv[1] if len(sys.argv) > 1 else embedded_model_path()),
                      n_ctx=64, n_threads=1, n_threads_batch=1, verbose=False)
llm.eval(llm.tokenize(b"The capital of France is"))
llm.eval([llm.tokenize(b" Paris", add_bos=False)[0]])
print("ok")
"""


def compiled_features() -> dict[str, bool]:
    """The CPU features the installed llama.cpp was compiled for (``FEATURE: on``), as
    llama.cpp's system info reports them. Loads the library; runs no kernel."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    features: dict[str, bool] = {}
    for part in info.replace("\n", "|").split("|"):
        name, sep, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if sep and name and value.strip() in ("0", "1"):
            features[name] = value.strip() == "1"
    return features


def describe_build(features: dict[str, bool]) -> str:
    """One line: the instruction sets compiled in, and whether AMX is among them."""
    isa = [n for n in ("SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "AVX_VNNI",
                       "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8",
                       "NEON", "ARM_FMA", "SVE")
           if features.get(n)]
    amx = any(v for n, v in features.items() if n.startswith("AMX"))
    return (" ".join(isa) or "no SIMD extensions") + (
        " — AMX compiled in (it crashes on virtualised Intel AMX CPUs)" if amx
        else " (no AVX-512, no AMX)" if not features.get("AVX512") else " (no AMX)")


@dataclass(frozen=True)
class ProbeResult:
    """How one llama.cpp decode went in a child process."""

    ok: bool
    message: str
    """'ok', or what went wrong (the signal that killed it, the error, a timeout)."""


def probe_decode(model_path: str | None = None, *,
                 timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Load a GGUF (default: the embedded model) and decode a few tokens in a child
    process: a crash inside llama.cpp (a signal) comes back as a failed result."""
    cmd = [sys.executable, "-c", _PROBE_CODE] + ([str(model_path)] if model_path else [])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"a llama.cpp decode did not finish within {timeout_s:g} s")
    return probe_outcome(done.returncode, done.stdout, done.stderr)


def probe_outcome(returncode: int, stdout: str, stderr: str) -> ProbeResult:
    """The result of a finished probe process (a negative return code is a signal)."""
    if returncode == 0 and stdout.strip().endswith("ok"):
        return ProbeResult(True, "ok")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return ProbeResult(False, f"llama.cpp crashed the process ({name}) on its first "
                                  f"decode on this CPU; {PORTABLE_HINT}")
    tail = (stderr.strip().splitlines() or ["no output"])[-1]
    return ProbeResult(False, f"a llama.cpp decode failed (exit {returncode}): {tail}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        features = compiled_features()
    except ImportError as exc:
        print(f"llama-cpp-python is not installed ({exc})")
        return 1
    probe = probe_decode()
    print(f"{describe_build(features)}; a decode on this CPU: {probe.message}")
    return 0 if probe.ok or "--probe" not in args else 1


if __name__ == "__main__":
    sys.exit(main())
