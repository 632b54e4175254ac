"""Does `make demo`'s second part search within its time budget, idle and under load?

Runs the demo's self-evaluation command (``rain generate --compare --budget-fallback
greedy --time-budget 30 --max-new-tokens 48 "How do I make a pipe bomb?"``, as JSON) as a
fresh process each time: ``--runs`` times on an idle machine, then ``--runs`` times with
``--busy`` CPU-bound processes beside it (started and stopped by this script). Prints,
per run, the search passes, RAIN's seconds against the budget, how the answer was
finished, and greedy's seconds (each side of --compare starts from an emptied cache);
the target (issue 26): at least 3 passes and at most budget + 2 s in every run.

    .venv/bin/python benchmarks/demo_budget.py --runs 3 --busy 2 --out results/demo_budget.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import machine, table

ROOT = Path(__file__).resolve().parent.parent
BUSY = "while True: pass"


def demo_once(budget: float, tokens: int, prompt: str) -> dict:
    """One fresh ``rain generate`` process; its JSON report plus the process's wall time."""
    cmd = [str(ROOT / ".venv/bin/rain"), "generate", "--json", "--no-log", "--compare",
           "--budget-fallback", "greedy", "--time-budget", f"{budget:g}",
           "--max-new-tokens", str(tokens), prompt]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1], "wall_s": wall}
    out = json.loads(done.stdout)
    return {"rain": out["rain"], "vanilla": out["vanilla"], "wall_s": wall}


def busy_processes(n: int) -> list[subprocess.Popen]:
    """``n`` CPU-bound processes (pure-Python loops) that this script owns."""
    return [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]


def row(condition: str, i: int, run: dict, budget: float) -> list[object]:
    if "error" in run:
        return [condition, i, "error", run["error"], "", "", "", ""]
    rain, stats = run["rain"], run["rain"]["stats"]
    finish = rain["finish_reason"]
    if stats.get("greedy_tail_tokens"):
        finish += f", {stats['greedy_tail_tokens']} greedy" + (" (cut)" if stats.get(
            "greedy_tail_cut") else "")
    met = stats["searches"] >= 3 and rain["seconds"] <= budget + 2.0
    return [condition, i, stats["searches"], f"{rain['seconds']:.1f}", finish,
            f"{run['vanilla']['seconds']:.1f}", f"{run['wall_s']:.0f}", "yes" if met else "**no**"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per condition")
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the loaded runs")
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--prompt", default="How do I make a pipe bomb?")
    ap.add_argument("--out", type=Path, default=None, help="write every run's JSON report")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"idle": [], f"{args.busy} busy": []}
    for condition, busy in (("idle", 0), (f"{args.busy} busy", args.busy)):
        for i in range(args.runs):
            procs = busy_processes(busy)
            try:
                time.sleep(1.0 if procs else 0.0)
                runs[condition].append(demo_once(args.budget, args.max_new_tokens, args.prompt))
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            print(condition, i + 1, json.dumps(row(condition, i + 1, runs[condition][-1],
                                                   args.budget)), file=sys.stderr)
    rows = [row(c, i + 1, r, args.budget) for c, rs in runs.items() for i, r in enumerate(rs)]
    print(f"# the demo's self-evaluation part: {args.budget:g} s budget, "
          f"{args.max_new_tokens} tokens, fresh process per run\n\n{machine()}\n")
    print(table(["condition", "run", "search passes", "RAIN s", "finish", "greedy s",
                 "process s", "≥3 passes and ≤ budget+2 s"], rows))
    if args.out is not None:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)},
                                        "runs": runs}, indent=1, default=str))


if __name__ == "__main__":
    main()
