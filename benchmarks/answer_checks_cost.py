"""What ``answer_checks`` costs when the search's judge is the model's own self-evaluation.

With a rule as the judge (the frontier's tasks) a check is free: the rule reads text. With
the model's self-evaluation (the default judge of ``rain generate`` and ``rain serve``)
each check is one more judged text — a judge prompt per option order — for every whole
answer judged at least ``repair_threshold``. This script answers the same prompts with
the default search and with the default search plus ``answer_checks=2``, both judged by
the model itself, same seeds, each answer from a cold prefix cache, and prints per
configuration: model tokens encoded (prefill + decode, judge prompts included), seconds,
judged texts, check judgements, vetoes, how many answers the checks changed, and the
final self-evaluation of each answer; then the ratios "with checks ÷ without".

    .venv/bin/python benchmarks/answer_checks_cost.py [--vicuna 4] [--advbench 4] \
        [--max-new-tokens 48] [--out benchmarks/results/answer_checks_cost.jsonl]

Each answer is appended to --out as it finishes; running again with the same file skips
the answers already there (same prompt, configuration and settings).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import advbench_prompts, encoded_tokens, machine, table, vicuna_prompts

CONFIGS = {"default": {}, "default+checks": {"answer_checks": 2},
           "default+checks-best": {"answer_checks": 2, "answer_checks_scope": "new_best"}}
"""The searches compared: the harmless preset (the default search) without and with
second opinions on whole answers (on every whole answer judged ≥ 0, or only on one that
would become the best); the names of ``rain bench frontier --rain``."""


def run_one(backend, prompt: str, name: str, max_new_tokens: int, seed: int) -> dict:
    """One answer of configuration ``name`` from a cold cache, with its costs."""
    from rainlm.request import GenerationParams, answer

    params = GenerationParams.from_preset("harmless", max_new_tokens=max_new_tokens, seed=seed,
                                          embedder="minilm")
    params = params.replace(config=params.config.replace(**CONFIGS[name]))
    backend.clear_cache()
    done = answer(backend, prompt, params)
    stats = done.result.stats
    return {"prompt": prompt, "config": name, "max_new_tokens": max_new_tokens, "seed": seed,
            "text": done.result.text, "finish_reason": done.result.finish_reason,
            "budget_limited": done.budget_limited, "seconds": round(done.seconds, 3),
            "encoded": encoded_tokens(stats["backend"]), "score": done.score,
            "paper_vote": done.paper_vote, "searches": stats["searches"],
            "judged_texts": stats["evaluations"] - stats["evaluation_cache_hits"],
            "check_judgements": stats["check_judgements"],
            "answer_vetoes": stats["answer_vetoes"]}


def summarise(rows: list[dict]) -> None:
    """A table per configuration over the prompts every configuration answered, and the
    ratios of each to the default."""
    pick = {name: {r["prompt"]: r for r in rows if r["config"] == name} for name in CONFIGS}
    prompts = [p for p in pick["default"] if all(p in pick[name] for name in CONFIGS)]
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
                      sum(r["text"] != pick["default"][p]["text"] for p, r in zip(prompts, rs))])
    print(table(["search", "answers", "tokens encoded", "seconds", "judged texts", "check judgements",
                 "vetoes", "budget-limited", "mean final score", "final vote +1",
                 "answers ≠ default's"], lines))
    if not prompts:
        return
    base = lines[0]
    for line in lines[1:]:
        print(f"{line[0]} ÷ default: tokens encoded {line[2] / base[2]:.2f}×, "
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
    key = lambda r: (r["prompt"], r["config"], r["max_new_tokens"], r["seed"])  # noqa: E731
    have = {key(r) for r in done}
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
