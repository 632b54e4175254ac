"""Searches one after another vs together (``rainlm.generate_many``), same prompts, seeds
and settings, in one run.

The search is a state machine that yields its model calls (``rainlm.backends.steps``);
``generate_many`` advances N searches together and sends every round's next-token calls
(the searches' and their self-evaluation's) to the model as one batched call
(``core.scheduler``). This script answers N Vicuna prompts with the embedded model twice:

- **one after another**: ``generate`` per prompt (what one worker does);
- **together**: ``generate_many`` on all N prompts (groups of ``--together``).

Before each phase the prefix cache is emptied and every prompt is answered greedily
once (as a long-running server would have them cached). Prints per phase: wall seconds,
answers per second, the model's forward passes, prefill and decode tokens, and the batch
sizes (searches per model call); then the ratios, and how many answers came out the same
(a batched forward pass may differ from a lone one in the last bits, which can flip a
near-tie). Writes the table to benchmarks/results/searches_together.txt.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/searches_together.py [-n 8] [--together 8]
        [--cache-mb 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import REPO, machine, table, vicuna_prompts

sys.path.insert(0, str(REPO / "src"))


def phase(backend, prompts: list[str], args: argparse.Namespace, together: int) -> dict:
    """Answer ``prompts`` (greedy warm-up first); ``together`` 1: one after another."""
    from rainlm.api import generate, generate_many, greedy
    from rainlm.backends.base import clear_prefix_cache
    from rainlm.core.scheduler import BatchCounts

    clear_prefix_cache(backend)
    for p in prompts:
        greedy(backend, p, max_new_tokens=args.max_tokens)
    config = _config(args)
    before = backend.counters.snapshot()
    counts = BatchCounts()
    start = time.perf_counter()
    if together == 1:
        results = [generate(backend, p, config, embedder="hashing", seed=args.seed,
                            max_new_tokens=args.max_tokens) for p in prompts]
    else:
        results = []
        for at in range(0, len(prompts), together):
            results += generate_many(backend, prompts[at:at + together], config,
                                     embedder="hashing", seed=args.seed,
                                     max_new_tokens=args.max_tokens, batch_counts=counts)
    wall = time.perf_counter() - start
    after = backend.counters.snapshot()
    sizes = counts.searches_per_model_call
    return {"phase": "one after another" if together == 1 else f"together ({together})",
            "answers": len(results), "wall_s": round(wall, 1),
            "answers_per_s": round(len(results) / wall, 4),
            "forward_passes": after["forward_calls"] - before["forward_calls"],
            "prefill_tokens": after["prefill_tokens"] - before["prefill_tokens"],
            "decode_tokens": after["decode_tokens"] - before["decode_tokens"],
            "mean_batch": round(counts.mean_batch, 2) if sizes else 1,
            "max_batch": max(sizes) if sizes else 1,
            "texts": [r.text for r in results],
            "searches": sum(r.stats["searches"] for r in results)}


def _config(args: argparse.Namespace):
    from rainlm.config import RainConfig

    return RainConfig.preset("harmless").replace(max_searches_per_step=args.max_searches_per_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=8, help="prompts")
    parser.add_argument("--together", type=int, default=8, help="searches run together")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-searches-per-step", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-mb", type=float, default=512,
                        help="the backend's prefix-cache budget (its default: 512 MiB)")
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "searches_together.txt")
    args = parser.parse_args()
    from rainlm.backends.loading import load_backend

    backend = load_backend(device="cpu", cache_budget_mb=args.cache_mb)
    prompts = vicuna_prompts(args.n)
    rows = [phase(backend, prompts, args, 1), phase(backend, prompts, args, args.together)]
    alone, both = rows
    same = sum(a == b for a, b in zip(alone.pop("texts"), both.pop("texts")))
    header = (f"{args.n} Vicuna prompts, the embedded model, harmless preset (self-evaluation), "
              f"hashing embedder, max_tokens {args.max_tokens}, max_searches_per_step "
              f"{args.max_searches_per_step}, seed {args.seed}, prefix cache "
              f"{args.cache_mb:g} MiB, "
              f"{__import__('os').environ.get('OMP_NUM_THREADS', 'default')} torch thread(s)\n"
              f"machine: {machine()}\n\n")
    text = (header + table(list(rows[0]), [list(r.values()) for r in rows]) + "\n\n"
            f"together / one after another: answers/s "
            f"x{both['answers_per_s'] / alone['answers_per_s']:.2f}, "
            f"forward passes x{both['forward_passes'] / alone['forward_passes']:.2f}, "
            f"prefill tokens x{both['prefill_tokens'] / max(alone['prefill_tokens'], 1):.2f}; "
            f"same answer text: {same}/{args.n}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
