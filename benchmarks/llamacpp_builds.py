"""What the portable llama.cpp build costs against other builds, measured in one run.

``scripts/setup`` builds llama-cpp-python for a portable x86-64 instruction set (AVX2,
FMA, F16C, BMI2) instead of llama.cpp's native build, whose AMX kernel crashes on
virtualised Intel AMX CPUs. This script times each given build on the embedded
SmolLM2-135M GGUF, each in its own child process (a build that crashes is reported, not
fatal), the builds interleaved round by round so that a change in the machine's load
falls on all of them alike:

- prefill: one ``eval`` of a 300-token prompt (tokens/s);
- decode: 64 single-token ``eval`` calls after it (tokens/s);
- rainlm's ``LlamaCppBackend``: 64 greedy steps through ``next_logprobs`` (tokens/s).

Builds are given as NAME=DIR, where DIR holds an unpacked llama-cpp-python wheel (the
folder with ``llama_cpp/``), or NAME=installed for the one in this interpreter::

    .venv/bin/python benchmarks/llamacpp_builds.py --build portable=installed \\
        --build avx512=/tmp/wheels/avx512-site --rounds 5 --threads 1

The medians over rounds and each build's ratio to the first build are printed; ``--out``
writes the raw rounds as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, table

CHILD = r"""
import json, sys, time
import llama_cpp
from rainlm.backends.embedded import embedded_model_path
from rainlm.backends.llamacpp import LlamaCppBackend
from rainlm.backends.llamacpp_build import compiled_features, describe_build
threads = int(sys.argv[1])
path = str(embedded_model_path())
llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads,
                      n_threads_batch=threads, verbose=False)
words = (b"The quick brown fox jumps over the lazy dog while the river runs to the sea. "
         * 40)
prompt = llm.tokenize(words)[:300]
t = time.perf_counter(); llm.eval(prompt); prefill = time.perf_counter() - t
step = llm.tokenize(b" the", add_bos=False)[0]
t = time.perf_counter()
for _ in range(64):
    llm.eval([step])
decode = time.perf_counter() - t
backend = LlamaCppBackend(n_threads=threads)
ctx = backend.render_prompt([{"role": "user", "content": "Tell me about rivers."}])
backend.next_logprobs([ctx])
t = time.perf_counter()
for _ in range(64):
    ctx = ctx + [backend.next_logprobs([ctx])[0].argmax()]
greedy = time.perf_counter() - t
print(json.dumps({"prefill_tok_s": 300 / prefill, "decode_tok_s": 64 / decode,
                  "backend_greedy_tok_s": 64 / greedy,
                  "build": describe_build(compiled_features())}))
"""
MEASURES = ("prefill_tok_s", "decode_tok_s", "backend_greedy_tok_s")


def run_child(site: str, threads: int) -> dict:
    """One round of one build in a child process (``{"error": ...}`` when it fails)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if site != "installed":
        env["PYTHONPATH"] = os.pathsep.join([site, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-c", CHILD, str(threads)], capture_output=True,
                          text=True, env=env, timeout=600)
    if done.returncode != 0:
        why = (f"killed by signal {-done.returncode}" if done.returncode < 0
               else (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1])
        return {"error": why}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True, metavar="NAME=DIR",
                    help="a build to time: DIR holds an unpacked wheel, or 'installed'")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="write the raw rounds as JSON")
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.build)
    rounds: dict[str, list[dict]] = {name: [] for name in builds}
    for r in range(args.rounds):
        for name, site in builds.items():
            rounds[name].append(run_child(site, args.threads))
            print(f"round {r + 1} {name}: {rounds[name][-1]}", file=sys.stderr)
    print(f"# llama.cpp builds on the embedded SmolLM2-135M (Q4_1), {args.threads} thread(s), "
          f"median of {args.rounds} interleaved rounds\n\n{machine()}\n")
    first = next(iter(builds))
    med = {name: {m: statistics.median(x[m] for x in rs if m in x) if all(m in x for x in rs)
                  else None for m in MEASURES} for name, rs in rounds.items()}
    rows = []
    for name, rs in rounds.items():
        errors = sorted({x["error"] for x in rs if "error" in x})
        build = next((x["build"] for x in rs if "build" in x), "")
        cells = []
        for m in MEASURES:
            v, base = med[name][m], med[first][m]
            cells.append("—" if v is None else
                         f"{v:.0f}" + (f" ({v / base:.2f}x)" if base and name != first else ""))
        rows.append([name, *cells, "; ".join(errors) or build])
    print(table(["build", "prefill tok/s", "decode tok/s", "rainlm greedy tok/s", "notes"], rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"threads": args.threads, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
