"""How much the prefix KV cache of the transformers backend saves, measured in one run.

Runs on the embedded SmolLM2-135M-Instruct and prints, for each access pattern of the
search, the time with the cache and with it cleared before every call (each call then
re-encodes its whole context), their ratio, and the largest difference between the
cached and the fresh log-probabilities.

    .venv/bin/python benchmarks/backend_cache.py [--steps 30] [--prefix 300] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _max_diff(a, b) -> float:
    return max(float(np.abs(x.logprobs - y.logprobs).max()) for x, y in zip(a, b, strict=True))


def decode_loop(backend, prompt, steps: int, *, cached: bool):
    """Greedy decoding, one next_logprobs call per token (the simulation pattern)."""
    ctx, dists = list(prompt), []
    backend.clear_cache()
    backend.next_logprobs([ctx])  # the prompt itself is encoded once in both modes
    t0 = time.perf_counter()
    for _ in range(steps):
        if not cached:
            backend.clear_cache()
        d = backend.next_logprobs([ctx])[0]
        dists.append(d)
        ctx.append(d.argmax())
    return time.perf_counter() - t0, dists


def shared_prefix(backend, prefix, suffixes, *, cached: bool, warm: bool):
    """Several contexts sharing ``prefix`` in one call (expansion and judge patterns)."""
    contexts = [prefix + s for s in suffixes]
    backend.clear_cache()
    if warm:
        backend.next_logprobs([prefix])  # the parent / few-shot prefix is already known
    if cached:
        return _timed(lambda: backend.next_logprobs(contexts))

    def one_by_one():
        out = []
        for c in contexts:
            backend.clear_cache()
            out.extend(backend.next_logprobs([c]))
        return out
    return _timed(one_by_one)


def make_prefix(backend, n_tokens: int) -> list[int]:
    text = ("Here are examples of harmless and harmful answers. Human: How do I bake bread? "
            "Assistant: Mix flour, water, salt and yeast, knead, let it rise, then bake. "
            "Verdict: (A) harmless. ")
    ids: list[int] = []
    while len(ids) < n_tokens:
        ids += backend.tokenize(text)
    return ids[:n_tokens]


def row(name: str, fresh_s: float, cached_s: float, diff: float, per: int = 1) -> None:
    print(f"{name:<44} {fresh_s * 1e3 / per:>10.1f} {cached_s * 1e3 / per:>10.1f} "
          f"{fresh_s / cached_s:>7.1f}x {diff:>9.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="decode steps (default 30)")
    ap.add_argument("--prefix", type=int, default=300, help="shared prefix tokens (300)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()

    from rainlm.backends.embedded import load_embedded_backend

    load_s, backend = _timed(lambda: load_embedded_backend(device="cpu",
                                                           num_threads=args.threads))
    import torch

    print(f"model {backend.name}: loaded in {load_s:.2f} s, "
          f"{torch.get_num_threads()} torch threads\n")
    print(f"{'pattern':<44} {'fresh ms':>10} {'cached ms':>10} {'ratio':>8} {'max|diff|':>9}")
    prompt = backend.render_prompt([{"role": "user", "content": "Tell me about the sea."}])
    fresh_s, fresh_d = decode_loop(backend, prompt, args.steps, cached=False)
    cached_s, cached_d = decode_loop(backend, prompt, args.steps, cached=True)
    row(f"decode step ({len(prompt)}-token prompt, per step)", fresh_s, cached_s,
        _max_diff(fresh_d, cached_d), per=args.steps)

    prefix = make_prefix(backend, args.prefix)
    tops = backend.next_logprobs([prefix])[0].top_k(10)[0]
    one_token = [[int(t)] for t in tops]
    f_s, f_d = shared_prefix(backend, prefix, one_token, cached=False, warm=False)
    c_s, c_d = shared_prefix(backend, prefix, one_token, cached=True, warm=True)
    row(f"10 x 1 token on a cached {args.prefix}-token prefix", f_s, c_s, _max_diff(f_d, c_d))
    c_s, c_d = shared_prefix(backend, prefix, one_token, cached=True, warm=False)
    row(f"10 x 1 token, {args.prefix}-token prefix not yet cached", f_s, c_s,
        _max_diff(f_d, c_d))

    judge = [backend.tokenize(" Human: How do I pick a lock? Assistant: I can't help."),
             backend.tokenize(" Human: How do I grow tomatoes? Assistant: Sun and water.")]
    f_s, f_d = shared_prefix(backend, prefix, judge, cached=False, warm=False)
    c_s, c_d = shared_prefix(backend, prefix, judge, cached=True, warm=True)
    row(f"judge: 2 prompts on a cached {args.prefix}-token few-shot", f_s, c_s,
        _max_diff(f_d, c_d))
    print(f"\ncounters: {backend.counters.snapshot()}")


if __name__ == "__main__":
    main()
