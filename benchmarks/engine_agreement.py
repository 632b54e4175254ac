"""How far a llama.cpp engine's numbers move: cached vs fresh, and engine vs transformers.

llama.cpp is built natively on each machine, so its kernels (and its rounding) depend on
the CPU (AVX2 or AVX-512, Intel or AMD); it runs the Q4_1 weights with 8-bit activations
while the transformers backend runs their fp32 de-quantisation. The tests of the HTTP
backend take their tolerances from this script's numbers (see the comments next to the
assertions in ``tests/backends/``).

For each context (a Vicuna question, and the same question with the first 4/8/16 tokens
of the transformers greedy answer appended) it measures:

- **cached vs fresh** on the engine: the context asked after two other contexts (the
  server reuses whatever prefix they share and re-encodes the rest) against the same
  context asked first (encoded from scratch): top-1 agreement, top-5 set and order,
  max |Δ log p| over the top-5;
- **engine vs transformers**: top-1 agreement, top-5 overlap, whether the engine's best
  is in transformers' top 3, max |Δ log p| over the shared top-5 tokens, and
  KL(transformers ‖ engine) over the engine's top-10 renormalised.

    scripts/engine_server start 8077
    .venv/bin/python benchmarks/engine_agreement.py --url http://127.0.0.1:8077/v1 [--prompts 12]
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from common import table, vicuna_prompts

OUT = Path(__file__).resolve().parent / "results" / "engine_agreement.txt"
EXTENSIONS = (0, 4, 8, 16)


def top(dist, k):
    ids, probs = dist.top_k(k)
    return [int(i) for i in ids], np.log(probs)


def kl_on_support(dense, sparse, k=10) -> float:
    """KL(transformers ‖ engine) over the engine's top-k tokens, both renormalised there."""
    ids, p_e = sparse.top_k(k)
    p_t = np.array([dense.prob_of(int(i)) for i in ids])
    p_e, p_t = p_e / p_e.sum(), p_t / p_t.sum()
    return float(np.sum(p_t * (np.log(p_t) - np.log(p_e))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the engine's base URL, e.g. http://127.0.0.1:8077/v1")
    ap.add_argument("--prompts", type=int, default=12)
    args = ap.parse_args()

    import rainlm
    from rainlm.backends.embedded import load_embedded_backend
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    dense_b = load_embedded_backend(num_threads=1)
    contexts = []
    for q in vicuna_prompts(args.prompts):
        prompt = dense_b.render_prompt([{"role": "user", "content": q}])
        answer = list(rainlm.greedy(dense_b, q, max_new_tokens=max(EXTENSIONS)).token_ids)
        contexts += [prompt + answer[:n] for n in EXTENSIONS if n <= len(answer)]
    rows_cache, rows_cross = [], []
    with OpenAICompatibleBackend(args.url) as eng:
        for i, ctx in enumerate(contexts):
            eng.next_logprobs([contexts[i - 1]], top_k=10)  # something else in the slot first
            fresh, = eng.next_logprobs([ctx], top_k=10)
            for other in (contexts[i - 2], contexts[(i + 3) % len(contexts)]):  # two others
                eng.next_logprobs([other], top_k=10)
            again, = eng.next_logprobs([ctx], top_k=10)
            (fi, fl), (ai, al) = top(fresh, 5), top(again, 5)
            shared = [t for t in fi if t in ai]
            diff = max(abs(fl[fi.index(t)] - al[ai.index(t)]) for t in shared)
            rows_cache.append((fi[0] == ai[0], set(fi) == set(ai), fi == ai, diff))
            dense, = dense_b.next_logprobs([ctx])
            (ti, tl), (ei, el) = top(dense, 5), top(fresh, 5)
            both = [t for t in ei if t in ti]
            cross = max(abs(el[ei.index(t)] - np.log(dense.prob_of(t))) for t in both)
            rows_cross.append((ti[0] == ei[0], len(both), ei[0] in ti[:3], cross,
                               kl_on_support(dense, fresh)))
    c = np.array(rows_cache, dtype=float)
    x = np.array(rows_cross, dtype=float)
    n = len(contexts)
    lines = [f"machine: {platform.processor() or platform.machine()}; engine {args.url}; "
             f"{n} contexts ({args.prompts} Vicuna questions, answer prefixes {EXTENSIONS})", "",
             "cached vs fresh (engine):",
             table(["contexts", "top-1 same", "top-5 set same", "top-5 order same",
                    "max |Δ log p| top-5 (max)", "(p95)", "(median)"],
                   [[n, f"{c[:, 0].mean():.0%}", f"{c[:, 1].mean():.0%}", f"{c[:, 2].mean():.0%}",
                     float(c[:, 3].max()), float(np.percentile(c[:, 3], 95)),
                     float(np.median(c[:, 3]))]]), "",
             "engine vs transformers fp32:",
             table(["contexts", "top-1 same", "min top-5 overlap", "engine best in top-3",
                    "max |Δ log p| shared top-5 (max)", "(p95)", "KL top-10 (max)", "(median)"],
                   [[n, f"{x[:, 0].mean():.0%}", int(x[:, 1].min()), f"{x[:, 2].mean():.0%}",
                     float(x[:, 3].max()), float(np.percentile(x[:, 3], 95)),
                     float(x[:, 4].max()), float(np.median(x[:, 4]))]])]
    text = "\n".join(lines)
    print(text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")


if __name__ == "__main__":
    main()
