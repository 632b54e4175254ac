"""What batching buys on an engine: one request's seconds against several prompts in one
request, and several continuations on their way at once (``--url``, vLLM by default).

A RAIN search asks an engine for two kinds of work (``docs/engines.md``): next-token
distributions (one new token after a cached prompt: the search's expansions and the
judge's prompts) and continuations (an imagination of up to a clause). Running several
searches together (``rain serve``, ``generate_many``: ``core/scheduler.py``) pays only
as far as the engine answers k prompts in less than k times one prompt's seconds. This
prints, measured in one run (best of ``--repeats``): one request with 1, 4 and 16
prompts of one token (the prompts extend one cached prefix by one token each, so the
prefix cache serves them), and 1, 4 and 8 concurrent sampled continuations of 16 tokens.

    scripts/vllm_server start
    .venv/bin/python benchmarks/engine_batching.py --url http://127.0.0.1:8123/v1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import REPO, machine, table

sys.path.insert(0, str(REPO / "src"))


def best_seconds(work, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        out.append(time.perf_counter() - start)
    return min(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8123/v1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "engine_batching.txt")
    args = parser.parse_args()
    from rainlm.backends.decoding import DecodeRequest
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    backend = OpenAICompatibleBackend(args.url, max_parallel=16)
    prompt = backend.render_prompt([{"role": "user",
                                     "content": "Tell me about the history of Rome in detail."}])
    backend.next_logprobs([prompt], top_k=20)  # the prefix in the engine's cache
    rows = []
    one = None
    for k in (1, 4, 16):
        contexts = [prompt + [i] for i in range(k)]
        s = best_seconds(lambda c=contexts: backend.next_logprobs(c, top_k=20), args.repeats)
        one = one or s
        rows.append([f"next token, {k} prompt(s) in one request", k, round(s, 3),
                     round(s / one, 2), round(k * one / s, 2)])
    one = None
    for k in (1, 4, 8):
        seeds = iter(range(1_000_000))

        def continuations(k=k):
            backend.decode([DecodeRequest(prompt, 16, temperature=0.7, top_k=40, seed=next(seeds))
                            for _ in range(k)])

        s = best_seconds(continuations, args.repeats)
        one = one or s
        rows.append([f"16-token continuations, {k} at once", k, round(s, 3), round(s / one, 2),
                     round(k * one / s, 2)])
    text = (f"engine batching at {args.url} (best of {args.repeats})\nclient machine: {machine()}\n\n"
            + table(["work", "k", "seconds", "÷ k = 1", "throughput × (k × one ÷ seconds)"], rows)
            + "\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
