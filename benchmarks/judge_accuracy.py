"""Pairwise accuracy of the self-evaluator on Anthropic HH harmless-base pairs.

For each pair the conversation up to the last assistant turn is the context, and the
judge scores the final answer of ``chosen`` and of ``rejected`` (which differ only in
that answer). Accuracy = P(score(chosen) > score(rejected)) + 0.5 · P(tie), with a 95%
bootstrap interval over pairs. Every (scoring × transcript) variant is measured; the
two scorings reuse the same model calls, so the time is per transcript.

    .venv/bin/python benchmarks/judge_accuracy.py --n 60
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from rainlm.judge.base import EvalRequest
from rainlm.judge.self_eval import SCORINGS, TRANSCRIPTS, SelfEvaluator, combine_orders

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hh-rlhf" \
    / "harmless-base-test.jsonl.gz"
_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_dialogue(text: str) -> list[dict[str, str]]:
    """HH text ("\\n\\nHuman: …\\n\\nAssistant: …") -> chat messages, in order."""
    parts = _TURN.split("\n\n" + text.lstrip("\n"))
    # parts: ["", role1, content1, role2, content2, ...]
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()}
            for i in range(1, len(parts) - 1, 2)]


def load_pairs(path: Path, n: int) -> list[tuple[tuple[dict, ...], str, str]]:
    """First ``n`` usable pairs: (context messages, chosen answer, rejected answer).

    Pairs whose final answers are identical, or that do not end with an assistant turn,
    are skipped (no judge can separate them).
    """
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            chosen, rejected = parse_dialogue(row["chosen"]), parse_dialogue(row["rejected"])
            if not chosen or not rejected or any(d[-1]["role"] != "assistant"
                                                 for d in (chosen, rejected)):
                continue
            if chosen[-1]["content"] == rejected[-1]["content"]:
                continue
            pairs.append((tuple(chosen[:-1]), chosen[-1]["content"], rejected[-1]["content"]))
            if len(pairs) == n:
                break
    return pairs


def pairwise_accuracy(good: np.ndarray, bad: np.ndarray, *, resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float, float]:
    """(accuracy, 2.5% bound, 97.5% bound, tie rate); good/bad: [N] scores."""
    win = (good > bad).astype(np.float64) + 0.5 * (good == bad)  # [N] in {0, .5, 1}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(win), size=(resamples, len(win)))  # [resamples, N]
    boot = win[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(win.mean()), float(lo), float(hi), float(np.mean(good == bad))


def judge_pairs(ev: SelfEvaluator, pairs, batch_pairs: int) -> tuple[list, float]:
    """score_details for [chosen, rejected] of every pair; returns (details [N][2], seconds)."""
    out = []
    t0 = time.perf_counter()
    for start in range(0, len(pairs), batch_pairs):
        chunk = pairs[start: start + batch_pairs]
        reqs = [EvalRequest(msgs, ans) for msgs, c, r in chunk for ans in (c, r)]
        details = ev.score_details(reqs)  # [2 * len(chunk)]
        out.extend(details[i: i + 2] for i in range(0, len(details), 2))
    return out, time.perf_counter() - t0


def run(backend, pairs, *, rubric: str, shots: int | None, transcripts, scorings,
        batch_pairs: int) -> list[dict]:
    """One row per (transcript, scoring): accuracy, interval, ties, seconds per answer."""
    rows = []
    for transcript in transcripts:
        ev = SelfEvaluator(backend, rubric, transcript=transcript, shots=shots, orders="both")
        ev.score_details([EvalRequest(pairs[0][0], pairs[0][1])])  # warm the prefix cache
        details, secs = judge_pairs(ev, pairs, batch_pairs)
        p_first = np.mean([o.p_first / max(o.p_first + o.p_second, 1e-30)
                           for d in details for x in d for o in x.orders])
        for scoring in scorings:
            good = np.array([combine_orders(d[0].orders, scoring) for d in details])
            bad = np.array([combine_orders(d[1].orders, scoring) for d in details])
            acc, lo, hi, ties = pairwise_accuracy(good, bad)
            rows.append(dict(transcript=transcript, scoring=scoring, acc=acc, lo=lo, hi=hi,
                             ties=ties, p_first=float(p_first),
                             s_per_answer=secs / (2 * len(pairs))))
    return rows


def print_table(rows: list[dict], n: int, file=sys.stdout) -> None:
    """Markdown table of the rows."""
    print(f"\nself-evaluation pairwise accuracy, {n} HH harmless-base pairs", file=file)
    print("| transcript | scoring | accuracy | 95% CI | ties | mean P(first letter) "
          "| s / judged answer |", file=file)
    print("|---|---|---|---|---|---|---|", file=file)
    for r in rows:
        print(f"| {r['transcript']} | {r['scoring']} | {r['acc']:.3f} | "
              f"[{r['lo']:.2f}, {r['hi']:.2f}] | {r['ties']:.2f} | {r['p_first']:.2f} | "
              f"{r['s_per_answer']:.2f} |", file=file)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="harmless-base-test.jsonl.gz")
    ap.add_argument("--n", type=int, default=60, help="number of pairs (default 60)")
    ap.add_argument("--rubric", default="harmless", help="built-in rubric name or TOML path")
    ap.add_argument("--shots", type=int, default=None, help="few-shot examples (default all)")
    ap.add_argument("--transcripts", nargs="+", default=list(TRANSCRIPTS), choices=TRANSCRIPTS)
    ap.add_argument("--scorings", nargs="+", default=list(SCORINGS), choices=SCORINGS)
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
    pairs = load_pairs(args.data, args.n)
    if not pairs:
        raise SystemExit(f"no usable pairs in {args.data}")
    rows = run(backend, pairs, rubric=args.rubric, shots=args.shots,
               transcripts=args.transcripts, scorings=args.scorings,
               batch_pairs=args.batch_pairs)
    print_table(rows, len(pairs))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
