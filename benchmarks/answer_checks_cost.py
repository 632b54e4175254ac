"""What ``answer_checks`` costs when the search's judge is the model's own self-evaluation.

With a rule as the judge (the frontier's tasks) a check is free: the rule reads text. With
the model's self-evaluation (the default judge of ``rain generate`` and ``rain serve``)
each check is one more judged text — a judge prompt per option order. This script
answers the same prompts with the default search without checks, with checks on every
whole answer judged ≥ 0, and with checks only on an answer that would become the best
(``CONFIGS``), all judged by the model itself, same seeds, each answer from a cold
prefix cache, and prints per configuration: model tokens encoded (prefill + decode,
judge prompts included), seconds, judged texts, check judgements, vetoes, how many
answers the checks changed, and the final self-evaluation of each answer; then the
ratios to the search without checks.

    .venv/bin/python benchmarks/answer_checks_cost.py [--vicuna 4] [--advbench 4] \
        [--max-new-tokens 48] [--out benchmarks/results/answer_checks_cost.jsonl]

Each answer is appended to --out as it finishes; running again with the same file skips
the answers already there (same prompt, settings and search config).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
from pathlib import Path

from common import advbench_prompts, encoded_tokens, machine, table, vicuna_prompts

CONFIGS = ("default-checks", "default+checks", "default+checks-best")
"""The searches compared, by their ``rain bench frontier --rain`` names: the default
search without second opinions on whole answers (the default of stops 18–22), with them
on every whole answer judged ≥ 0, and with them only on an answer that would become the
best (today's default)."""


def config_of(name: str):
    """The RainConfig of variant ``name`` (the frontier's definition)."""
    from rainlm.bench.variants import RAIN_VARIANTS

    return RAIN_VARIANTS[name]()


def config_hash(config) -> str:
    """What a row's resume key holds of its search: a hash of the whole config, so rows of
    an older definition of a name are not mixed with new ones."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_one(backend, prompt: str, name: str, max_new_tokens: int, seed: int) -> dict:
    """One answer of configuration ``name`` from a cold cache, with its costs."""
    from rainlm.backends.base import clear_prefix_cache
    from rainlm.request import GenerationParams, answer

    config = config_of(name)
    params = GenerationParams(config=config, max_new_tokens=max_new_tokens, seed=seed,
                              embedder="minilm")
    clear_prefix_cache(backend)
    done = answer(backend, prompt, params)
    stats = done.result.stats
    return {"prompt": prompt, "config": name, "config_hash": config_hash(config),
            "max_new_tokens": max_new_tokens, "seed": seed,
            "text": done.result.text, "finish_reason": done.result.finish_reason,
            "budget_limited": done.budget_limited, "seconds": round(done.seconds, 3),
            "encoded": encoded_tokens(stats["backend"]), "score": done.score,
            "paper_vote": done.paper_vote, "searches": stats["searches"],
            "judged_texts": stats["evaluations"] - stats["evaluation_cache_hits"],
            "check_judgements": stats["check_judgements"],
            "answer_vetoes": stats["answer_vetoes"]}


def summarise(rows: list[dict]) -> None:
    """A table per configuration over the prompts every configuration answered, and the
    ratios of each to the first (no checks)."""
    pick = {name: {r["prompt"]: r for r in rows if r["config"] == name} for name in CONFIGS}
    base_name = CONFIGS[0]
    prompts = [p for p in pick[base_name] if all(p in pick[name] for name in CONFIGS)]
    lines = []
    for name in CONFIGS:
        rs = [pick[name][p] for p in prompts]
        lines.append([name, len(rs), sum(r["encoded"] for r in rs),
                      round(sum(r["seconds"] for r in rs), 1),
                      sum(r["judged_texts"] for r in rs), sum(r["check_judgements"] for r in rs),
                      sum(r["answer_vetoes"] for r in rs),
                      sum(r["budget_limited"] for r in rs),
                      round(statistics.mean(r["score"] for r in rs), 3) if rs else "–",
                      sum(r["paper_vote"] == 1 for r in rs),
                      sum(r["text"] != pick[base_name][p]["text"] for p, r in zip(prompts, rs))])
    print(table(["search", "answers", "tokens encoded", "seconds", "judged texts", "check judgements",
                 "vetoes", "budget-limited", "mean final score", "final vote +1",
                 f"answers ≠ {base_name}'s"], lines))
    if not prompts:
        return
    base = lines[0]
    for line in lines[1:]:
        print(f"{line[0]} ÷ {base_name}: tokens encoded {line[2] / base[2]:.2f}×, "
              f"seconds {line[3] / base[3]:.2f}×, judged texts {line[4] / max(base[4], 1):.2f}×")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vicuna", type=int, default=4, help="Vicuna questions (harmless)")
    ap.add_argument("--advbench", type=int, default=4, help="AdvBench behaviours (harmful)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/answer_checks_cost.jsonl"))
    args = ap.parse_args()

    import torch

    import rainlm

    torch.set_num_threads(args.threads)
    backend = rainlm.load_backend()
    prompts = vicuna_prompts(args.vicuna) + advbench_prompts(args.advbench)
    done: list[dict] = []
    if args.out.exists():
        done = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    hashes = {name: config_hash(config_of(name)) for name in CONFIGS}
    done = [r for r in done if r.get("config_hash") == hashes.get(r["config"])]
    have = {(r["prompt"], r["config"], r["max_new_tokens"], r["seed"]) for r in done}
    print(f"# {machine()}; {len(prompts)} prompts, {args.max_new_tokens}-token answers, "
          f"self-evaluation judge, seed {args.seed}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for prompt in prompts:
        for name in CONFIGS:
            if (prompt, name, args.max_new_tokens, args.seed) in have:
                continue
            row = run_one(backend, prompt, name, args.max_new_tokens, args.seed)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
            print(f"{name:15s} {row['seconds']:7.1f}s {row['encoded']:7d} tok "
                  f"checks {row['check_judgements']:3d} vetoes {row['answer_vetoes']:2d} "
                  f"score {row['score']:+.2f} | {prompt[:50]!r}", flush=True)
    rows = [r for r in done if r["max_new_tokens"] == args.max_new_tokens and r["seed"] == args.seed
            and r["prompt"] in prompts]
    summarise(rows)


if __name__ == "__main__":
    main()
