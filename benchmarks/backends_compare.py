"""Greedy and RAIN cost on several backends, same prompts, one run.

For the first Vicuna questions of the shipped data sets, each backend answers with plain greedy
decoding and with RAIN (harmless preset, the model's own self-evaluation as the judge,
the default embedder), and the script prints per backend: greedy seconds per answer
token, RAIN seconds per answer token, their ratio, seconds per search iteration
(wall_time_s / searches) and the searches made.

    .venv/bin/python benchmarks/backends_compare.py [--backends transformers,llamacpp]
        [--backend-spec llamacpp=/path/model.gguf] [--backend-spec openai=http://127.0.0.1:8000/v1]
        [--prompts 3] [--max-new-tokens 16] [--threads 1]

``--backends`` lists kinds with their default model (the embedded SmolLM2-135M-Instruct);
``--backend-spec KIND=ARG`` (repeatable) adds one with an argument. Kinds: see BUILDERS.
Everything runs on ONE thread (torch and llama.cpp) for a fair comparison; absolute
seconds move with the machine's load, the ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from common import machine, table, vicuna_prompts

OUT = Path(__file__).resolve().parent / "results" / "backends_compare.txt"


def _transformers(arg: str | None, threads: int):
    if arg:
        from rainlm.backends.transformers import TransformersBackend

        return TransformersBackend.from_pretrained(arg, device="cpu", num_threads=threads)
    from rainlm.backends.embedded import load_embedded_backend

    return load_embedded_backend(device="cpu", num_threads=threads)


def _llamacpp(arg: str | None, threads: int):
    from rainlm.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend(arg or None, n_threads=threads)


def _openai(arg: str | None, threads: int):
    from rainlm.backends.openai_compat import OpenAICompatibleBackend

    if not arg:
        raise SystemExit("openai needs a URL: --backend-spec openai=http://127.0.0.1:PORT/v1")
    return OpenAICompatibleBackend(arg)


#: kind -> builder(argument or None, threads) returning a Backend. Add kinds here.
BUILDERS: dict[str, Callable] = {"transformers": _transformers, "llamacpp": _llamacpp,
                                 "openai": _openai}


def parse_specs(backends: str, specs: list[str]) -> list[tuple[str, str | None]]:
    """(kind, argument) pairs from ``--backends a,b`` and ``--backend-spec KIND=ARG``."""
    out: list[tuple[str, str | None]] = [(k.strip(), None) for k in backends.split(",")
                                         if k.strip()]
    for spec in specs:
        kind, sep, arg = spec.partition("=")
        if not sep:
            raise SystemExit(f"--backend-spec {spec!r}: expected KIND=ARG")
        out.append((kind.strip(), arg.strip() or None))
    for kind, _ in out:
        if kind not in BUILDERS:
            raise SystemExit(f"unknown backend kind {kind!r}; known: {', '.join(BUILDERS)}")
    return out


def measure(backend, prompts: list[str], max_new_tokens: int) -> dict:
    """Greedy and RAIN totals over the prompts (each run from an emptied cache)."""
    import rainlm

    clear = getattr(backend, "clear_cache", lambda: None)
    rainlm.greedy(backend, prompts[0], max_new_tokens=2)  # warm-up (first-call overheads)
    tot = {"greedy_s": 0.0, "greedy_tokens": 0, "rain_s": 0.0, "rain_tokens": 0,
           "searches": 0, "answers": []}
    cfg = rainlm.RainConfig.preset("harmless")
    for p in prompts:
        clear()
        g = rainlm.greedy(backend, p, max_new_tokens=max_new_tokens)
        tot["greedy_s"] += g.stats["wall_time_s"]
        tot["greedy_tokens"] += len(g.token_ids)
        clear()
        r = rainlm.generate(backend, p, cfg, seed=0, max_new_tokens=max_new_tokens)
        tot["rain_s"] += r.stats["wall_time_s"]
        tot["rain_tokens"] += len(r.token_ids)
        tot["searches"] += r.stats["searches"]
        tot["answers"].append((p, g.text, r.text, r.stats.get("embedder")))
    return tot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="transformers,llamacpp",
                    help="comma-separated kinds with their default model")
    ap.add_argument("--backend-spec", action="append", default=[], metavar="KIND=ARG",
                    help="a backend with an argument (model path, URL); repeatable")
    ap.add_argument("--prompts", type=int, default=3, help="Vicuna questions (3)")
    ap.add_argument("--max-new-tokens", type=int, default=16, help="answer limit (16)")
    ap.add_argument("--threads", type=int, default=1, help="torch / llama.cpp threads (1)")
    ap.add_argument("--out", default=str(OUT), help="also write the report here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    prompts = vicuna_prompts(args.prompts)
    rows, notes = [], []
    for kind, arg in parse_specs(args.backends, args.backend_spec):
        label = kind if arg is None else f"{kind}={arg}"
        t0 = time.perf_counter()
        backend = BUILDERS[kind](arg, args.threads)
        load_s = time.perf_counter() - t0
        tot = measure(backend, prompts, args.max_new_tokens)
        g = tot["greedy_s"] / max(tot["greedy_tokens"], 1)
        r = tot["rain_s"] / max(tot["rain_tokens"], 1)
        rows.append([label, round(g, 4), round(1 / g, 1), round(r, 3), round(r / g, 1),
                     round(tot["rain_s"] / max(tot["searches"], 1), 4), tot["searches"],
                     round(load_s, 2)])
        for p, gt, rt, emb in tot["answers"]:
            notes.append(f"[{label}] {p[:50]!r}\n  greedy: {gt!r}\n  RAIN:   {rt!r}"
                         f" (embedder {emb})")
        close = getattr(backend, "close", None)
        if close:
            close()
    head = ["backend", "greedy s/token", "greedy tokens/s", "RAIN s/token", "RAIN ÷ greedy",
            "s/search iteration", "searches", "load s"]
    report = "\n".join([
        f"machine: {machine()}",
        f"single-thread comparison: torch.set_num_threads({args.threads}), llama.cpp "
        f"n_threads={args.threads}",
        f"{len(prompts)} Vicuna prompts, max_new_tokens={args.max_new_tokens}, harmless "
        f"preset, self-evaluation judge, seed 0; greedy includes the prompt's prefill", "",
        table(head, rows), "", "answers:", *notes, ""])
    print(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)


if __name__ == "__main__":
    main()
