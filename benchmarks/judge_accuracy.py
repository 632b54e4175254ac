"""Pairwise accuracy of the self-evaluator on Anthropic HH harmless-base pairs.

A thin wrapper around :mod:`rainlm.bench.calibrate` (which holds the pair parsing,
the scoring modes and the bootstrap accuracy; ``rain calibrate`` is the command-line
version with a verdict). This script measures every (transcript × scoring mode)
variant; the modes reuse the same model calls, so the time is per transcript.

    .venv/bin/python benchmarks/judge_accuracy.py --n 60
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rainlm.bench.calibrate import MODES, calibrate, load_hh_pairs, render_table
from rainlm.bench.datasets import BUILTIN, default_data_dir
from rainlm.judge.self_eval import TRANSCRIPTS


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir() / BUILTIN["hh"],
                    help="harmless-base-test.jsonl.gz")
    ap.add_argument("--n", type=int, default=60, help="number of pairs (default 60)")
    ap.add_argument("--rubric", default="harmless", help="built-in rubric name or TOML path")
    ap.add_argument("--shots", type=int, default=None, help="few-shot examples (default all)")
    ap.add_argument("--transcripts", nargs="+", default=list(TRANSCRIPTS), choices=TRANSCRIPTS)
    ap.add_argument("--scorings", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--batch-pairs", type=int, default=2,
                    help="pairs per backend call (each pair = 2 answers x 2 orders)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return ap.parse_args(argv)


def main(argv=None, backend=None) -> list[dict]:
    """Run the measurement; ``backend`` defaults to the embedded model."""
    args = parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if backend is None:
        from rainlm.backends.loading import load_backend
        backend = load_backend()
    pairs = load_hh_pairs(args.data, args.n)
    if not pairs:
        raise SystemExit(f"no usable pairs in {args.data}")
    rows = calibrate(backend, pairs, rubric=args.rubric, shots=args.shots,
                     transcripts=args.transcripts, modes=args.scorings,
                     batch_pairs=args.batch_pairs)
    print("\n" + render_table(rows), file=sys.stdout)
    out = [r.to_dict() for r in rows]
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
