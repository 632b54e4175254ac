"""Run every benchmark once, in sequence, and print their tables (``make bench``).

Each script prints ratios measured within its own single run; copy the tables into
benchmarks/RESULTS.md with the date and the machine. Takes about 45 minutes on 2 CPUs.

    .venv/bin/python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ["backend_cache.py"],
    ["judge_accuracy.py", "--n", "60"],
    ["search_cost.py"],
    ["memory.py"],
]
QUICK = [
    ["backend_cache.py", "--steps", "10"],
    ["judge_accuracy.py", "--n", "10"],
    ["search_cost.py", "--vicuna", "1", "--advbench", "1", "--max-new-tokens", "6",
     "--budgets", "10"],
    ["memory.py", "--max-new-tokens", "6", "--time-budget", "30"],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    args = ap.parse_args()
    failed = []
    for cmd in QUICK if args.quick else FULL:
        print(f"\n## {' '.join(cmd)}\n", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], cwd=HERE.parent)
        if proc.returncode != 0:
            failed.append(cmd[0])
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
