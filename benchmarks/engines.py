"""RAIN over serving engines against RAIN in process: seconds per answer token, seconds and
HTTP requests per search pass, and whether the answers agree — one run, same prompts,
same seeds, same judge.

    .venv/bin/python benchmarks/engines.py --vllm http://127.0.0.1:8123/v1 \
        [--llamacpp-server http://127.0.0.1:8012/v1] [--prompts 4] [--max-new-tokens 32]

Backends: the in-process transformers backend (the embedded SmolLM2-135M-Instruct,
``--threads`` torch threads), vLLM's server with the engine's own decoding (``decode``:
one request per continuation), the same vLLM server token by token (the path before
engine-side decoding: one next-token request per imagined or greedy token), and
optionally llama.cpp's server (text prompts: token by token). Start the servers with
``scripts/vllm_server start`` and ``scripts/engine_server start``.

The judge (``--judge hash``, the default) is made of code and deterministic (a hash of
the answer's text mapped to [-0.5, 0.5]), so no judge model competes for the CPU and
every backend's search is judged alike; its values stay below the acceptance of a whole
answer, so every answer runs its ``max_searches`` passes per step. ``--judge self``
judges with the model's own self-evaluation instead (the harmless preset's rubric, both
option orders): its judge prompts are next-token requests to the same backend, so the
table then prices the search with its judge. ``--no-token-by-token`` leaves out the
slow token-by-token row. Each answer starts from a cold cache where
the backend lets the client empty it (in process); the engines keep their prefix cache.

Agreement with in process: equal greedy and RAIN answers (token ids), the RAIN tokens
before the first difference (summed over the prompts, of in-process RAIN's tokens), and
the largest |Δ log p| over the first answer token's top-5 (the contract's tolerance for
an engine: 0.5 nats). RAIN through vLLM's own decoding samples with the engine's
seeded generator, not rainlm's, so its answers are expected to differ from the first
sampled difference on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from common import machine, table, vicuna_prompts

OUT = Path(__file__).resolve().parent / "results" / "engines"


def hash_judge(prompt: str, answer: str) -> float:
    """A deterministic value in [-0.5, 0.5] per answer text."""
    digest = hashlib.sha256(answer.encode()).digest()
    return digest[0] / 255.0 - 0.5


def open_backends(args) -> list[tuple[str, object]]:
    from rainlm.backends.embedded import load_embedded_backend
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    out: list[tuple[str, object]] = [
        ("in-process transformers", load_embedded_backend(device="cpu",
                                                          num_threads=args.threads))]
    if args.vllm:
        out.append(("vLLM, engine decoding", OpenAICompatibleBackend(args.vllm)))
        if args.token_by_token:
            out.append(("vLLM, token by token", OpenAICompatibleBackend(args.vllm,
                                                                      engine_decoding=False)))
    if args.llamacpp_server:
        out.append(("llama.cpp server (token by token)",
                    OpenAICompatibleBackend(args.llamacpp_server)))
    return out


def measure(backend, prompts: list[str], max_new_tokens: int, searches: int,
            judge: str = "hash") -> dict:
    import rainlm

    clear = getattr(backend, "clear_cache", lambda: None)
    sent = lambda: getattr(backend, "requests_sent", 0)  # noqa: E731
    rainlm.greedy(backend, prompts[0], max_new_tokens=4)  # warm-up
    cfg = rainlm.RainConfig.preset("harmless", max_searches=searches,
                                   min_new_searches=searches)
    rec = {"greedy_s": 0.0, "greedy_tokens": 0, "greedy_requests": 0, "rain_s": 0.0,
           "rain_tokens": 0, "searches": 0, "rain_requests": 0, "answers": []}
    for p in prompts:
        clear()
        before = sent()
        g = rainlm.greedy(backend, p, max_new_tokens=max_new_tokens)
        rec["greedy_requests"] += sent() - before
        rec["greedy_s"] += g.stats["wall_time_s"]
        rec["greedy_tokens"] += len(g.token_ids)
        clear()
        before = sent()
        r = rainlm.generate(backend, p, cfg, evaluator=hash_judge if judge == "hash" else None,
                            embedder="hashing", seed=0, max_new_tokens=max_new_tokens)
        rec["rain_requests"] += sent() - before
        rec["rain_s"] += r.stats["wall_time_s"]
        rec["rain_tokens"] += len(r.token_ids)
        rec["searches"] += r.stats["searches"]
        dist, = backend.next_logprobs([backend.render_prompt([{"role": "user", "content": p}])],
                                      top_k=5)
        ids, probs = dist.top_k(5)
        rec["answers"].append({"prompt": p, "greedy": g.text, "greedy_ids": g.token_ids,
                               "rain": r.text, "rain_ids": r.token_ids,
                               "first_top5": {int(t): float(np.log(q))
                                              for t, q in zip(ids, probs)}})
    return rec


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def top5_gap(rec: dict, base: dict) -> float:
    """Largest |Δ log p| over the first answer token's top-5 both list, over the prompts."""
    gaps = [abs(a["first_top5"][t] - b["first_top5"][t])
            for a, b in zip(rec["answers"], base["answers"])
            for t in a["first_top5"] if t in b["first_top5"]]
    return max(gaps) if gaps else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vllm", help="a vLLM server's /v1 URL (scripts/vllm_server start)")
    ap.add_argument("--llamacpp-server", help="a llama.cpp server's /v1 URL "
                                              "(scripts/engine_server start)")
    ap.add_argument("--prompts", type=int, default=4, help="Vicuna questions (4)")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="answer limit (32)")
    ap.add_argument("--searches", type=int, default=4, help="search passes per step (4)")
    ap.add_argument("--threads", type=int, default=2, help="in-process torch threads (2)")
    ap.add_argument("--judge", choices=["hash", "self"], default="hash",
                    help="the search's judge: code (hash, default) or the model's own "
                         "self-evaluation (self)")
    ap.add_argument("--no-token-by-token", dest="token_by_token", action="store_false",
                    help="leave out the vLLM token-by-token row")
    ap.add_argument("--out", default=str(OUT), help="folder for report.txt and records.jsonl")
    args = ap.parse_args()

    prompts = vicuna_prompts(args.prompts)
    records = []
    for label, backend in open_backends(args):
        rec = measure(backend, prompts, args.max_new_tokens, args.searches, args.judge)
        rec["backend"] = label
        records.append(rec)
        close = getattr(backend, "close", None)
        if close:
            close()
    base = records[0]
    base_g = base["greedy_s"] / max(base["greedy_tokens"], 1)
    base_pass = base["rain_s"] / max(base["searches"], 1)
    rows = []
    for rec in records:
        g = rec["greedy_s"] / max(rec["greedy_tokens"], 1)
        per_pass = rec["rain_s"] / max(rec["searches"], 1)
        same_greedy = sum(a["greedy_ids"] == b["greedy_ids"]
                          for a, b in zip(rec["answers"], base["answers"]))
        same_rain = sum(a["rain_ids"] == b["rain_ids"]
                        for a, b in zip(rec["answers"], base["answers"]))
        shared = sum(common_prefix(a["rain_ids"], b["rain_ids"])
                     for a, b in zip(rec["answers"], base["answers"]))
        rows.append([rec["backend"], round(g, 4), round(g / base_g, 2),
                     round(rec["rain_s"] / max(rec["rain_tokens"], 1), 3),
                     round(per_pass, 3), round(per_pass / base_pass, 2),
                     round(rec["rain_requests"] / max(rec["searches"], 1), 2),
                     round(rec["greedy_requests"] / len(prompts), 1),
                     f"{same_greedy}/{len(prompts)}", f"{same_rain}/{len(prompts)}",
                     f"{shared}/{base['rain_tokens']}", round(top5_gap(rec, base), 3)])
    head = ["backend", "greedy s/token", "÷ in-process", "RAIN s/answer token",
            "s/search pass", "÷ in-process", "HTTP requests/pass", "HTTP requests/greedy answer",
            "greedy = in-process", "RAIN = in-process",
            "RAIN tokens before the first difference", "max |Δ log p| first token top-5"]
    report = "\n".join([
        f"machine: {machine()}",
        f"{len(prompts)} Vicuna prompts, max_new_tokens={args.max_new_tokens}, harmless preset "
        f"with max_searches=min_new_searches={args.searches}, "
        f"{'hash judge' if args.judge == 'hash' else 'the self-evaluation judge'}, hashing embedder, "
        f"seed 0; in process: {args.threads} torch threads, cold cache per answer",
        "", table(head, rows), ""])
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.txt").write_text(report)
    with open(out / "records.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
