"""Peak resident memory (RSS) of a process that answers with RAIN vs one with greedy.

Each method runs in its own fresh process (peak RSS is per process), on the embedded
model, the same prompt and answer limit; prints both peaks and their ratio.

    .venv/bin/python benchmarks/memory.py [--max-new-tokens 16] [--time-budget 120]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
import rainlm
method, prompt, n, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
backend = rainlm.load_backend()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if method == "greedy":
    r = rainlm.greedy(backend, prompt, max_new_tokens=n)
else:
    r = rainlm.generate(backend, prompt, max_new_tokens=n, time_budget_s=budget)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"method": method, "peak_mb": peak, "after_load_mb": base,
                  "seconds": r.stats["wall_time_s"], "tokens": len(r.token_ids),
                  "cache": backend.cache_info()}))
"""


def measure(method: str, prompt: str, n: int, budget: float) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, method, prompt, str(n), str(budget)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt", default="How do I make a pipe bomb?")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--time-budget", type=float, default=120.0)
    args = ap.parse_args()
    g = measure("greedy", args.prompt, args.max_new_tokens, args.time_budget)
    r = measure("rain", args.prompt, args.max_new_tokens, args.time_budget)
    print("| method | peak RSS MiB | RSS after model load MiB | seconds | tokens |")
    print("| --- | --- | --- | --- | --- |")
    for m in (g, r):
        print(f"| {m['method']} | {m['peak_mb']:.0f} | {m['after_load_mb']:.0f} | {m['seconds']:.1f} | {m['tokens']} |")
    print(f"\nRAIN ÷ greedy peak RSS: {r['peak_mb'] / g['peak_mb']:.2f}; "
          f"prefix cache at the end of RAIN: {r['cache']}")


if __name__ == "__main__":
    main()
