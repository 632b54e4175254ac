"""What a RAIN answer costs against plain KV-cached greedy decoding, measured in one run.

On the embedded SmolLM2-135M-Instruct and prompts from the shipped data sets (Vicuna questions,
AdvBench behaviours), prints:

1. greedy: ms per answer token (the unit everything else is divided by);
2. RAIN with the self-evaluation judge, for each preset of ``--presets`` (default: the
   default search, ``harmless``, and the paper's algorithm, ``paper``): seconds per
   search iteration and that in greedy-token times; tokens the model encoded per
   iteration, and ÷ the minimum (every distinct token encoded once); RAIN time per
   answer token ÷ greedy time per token;
3. the overhead floor: the same with an evaluator that approves everything, so the
   search stops as early as the preset's rules allow;
   (both also in the optional parallel search mode, 4 leaves per round, for the first
   preset);
4. how time per iteration moves with the search budget (the paper preset's
   ``max_searches``, per step; the default search's ``max_total_searches``, per answer).

    .venv/bin/python benchmarks/search_cost.py [--vicuna 3] [--advbench 2] [--max-new-tokens 16] [--threads 1]

Absolute seconds are not comparable between runs on this shared machine; the ratios
within one run are what the targets are stated in.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import (DistinctTokenCounter, advbench_prompts, encoded_tokens, machine, table,
                    vicuna_prompts)


def approve_all(prompt: str, response: str) -> float:
    return 1.0


def run_greedy(backend, prompts, max_new_tokens, per_prompt=None):
    """Greedy seconds per token over the prompts, each from a cleared cache."""
    import rainlm

    seconds, tokens = 0.0, 0
    for p in prompts:
        backend.clear_cache()
        r = rainlm.greedy(backend, p, max_new_tokens=max_new_tokens)
        seconds += r.stats["wall_time_s"]
        tokens += max(len(r.token_ids), 1)
        if per_prompt is not None:
            per_prompt.append({"prompt": p[:60], "seconds": r.stats["wall_time_s"],
                               "tokens": len(r.token_ids)})
    return seconds / tokens


def run_rain(backend, counter, prompts, max_new_tokens, config, evaluator, embedder):
    """Totals over the prompts for one RAIN configuration."""
    import rainlm

    tot = dict(seconds=0.0, tokens=0, searches=0, encoded=0, distinct=0, phases={}, per_prompt=[])
    for p in prompts:
        backend.clear_cache()
        counter.reset()
        r = rainlm.generate(counter, p, config, max_new_tokens=max_new_tokens,
                            evaluator=evaluator, embedder=embedder, seed=0)
        tot["seconds"] += r.stats["wall_time_s"]
        tot["tokens"] += max(len(r.token_ids), 1)
        tot["searches"] += r.stats["searches"]
        tot["encoded"] += encoded_tokens(r.stats["backend"])
        tot["distinct"] += counter.distinct_tokens
        tot["per_prompt"].append({"prompt": p[:60], "seconds": r.stats["wall_time_s"],
                                  "tokens": len(r.token_ids), "searches": r.stats["searches"],
                                  "finish": r.finish_reason, "text": r.text})
        for k, v in r.stats["phase_seconds"].items():
            tot["phases"][k] = tot["phases"].get(k, 0.0) + v
    return tot


def summarize(name, tot, greedy_s):
    it = tot["seconds"] / max(tot["searches"], 1)
    return [name, tot["searches"], round(it, 3), round(it / greedy_s, 1),
            round(tot["encoded"] / max(tot["searches"], 1)),
            round(tot["encoded"] / max(tot["distinct"], 1), 2),
            round(tot["seconds"] / tot["tokens"] / greedy_s, 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vicuna", type=int, default=3, help="Vicuna questions (3)")
    ap.add_argument("--advbench", type=int, default=2, help="AdvBench behaviours (2)")
    ap.add_argument("--max-new-tokens", type=int, default=16, help="answer limit (16)")
    ap.add_argument("--budgets", default="10,25,50",
                    help="search budgets to sweep (max_searches, or max_total_searches for a "
                         "preset that has one)")
    ap.add_argument("--presets", default="harmless,paper",
                    help="presets to measure, in one run (harmless: the default search)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    ap.add_argument("--only-floor", action="store_true",
                    help="only greedy and the approve-all floor (sequential), no sweep")
    ap.add_argument("--out", default="benchmarks/results/search_cost.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import rainlm
    from rainlm.judge.self_eval import SelfEvaluator
    from rainlm.similarity.loading import load_embedder

    backend = rainlm.load_backend()
    counter = DistinctTokenCounter(backend)
    embedder = load_embedder("auto")
    prompts = vicuna_prompts(args.vicuna) + advbench_prompts(args.advbench)
    presets = [x for x in args.presets.split(",") if x]
    configs = {name: rainlm.RainConfig.preset(name) for name in presets}
    first = configs[presets[0]]
    judge = SelfEvaluator(counter, first.judging.rubric, scoring=first.judging.scoring, orders=first.judging.judge_orders)
    run_greedy(backend, prompts[:1], 4)  # warm-up (first-call overheads)
    greedy_runs: list = []
    greedy_s = run_greedy(backend, prompts, args.max_new_tokens, greedy_runs)

    rows, raw = [], {"greedy_s_per_token": greedy_s, "greedy_per_prompt": greedy_runs,
                     "presets": {name: c.to_dict() for name, c in configs.items()}}
    runs = []
    for name, cfg in configs.items():
        runs += [(f"{name}: self-eval judge", judge, cfg),
                 (f"{name}: approve-all (floor)", approve_all, cfg)]
    parallel = first.replace(search_mode="parallel", parallel_leaves=4)
    runs += [(f"{presets[0]}: self-eval, parallel x4", judge, parallel),
             (f"{presets[0]}: approve-all, parallel x4", approve_all, parallel)]
    if args.only_floor:
        runs, args.budgets = [r for r in runs if "floor" in r[0]], ""
    for name, ev, c in runs:
        tot = run_rain(backend, counter, prompts, args.max_new_tokens, c, ev, embedder)
        rows.append(summarize(name, tot, greedy_s))
        raw[name] = tot
    sweep = []
    for b in [int(x) for x in args.budgets.split(",") if x]:
        for name, cfg in configs.items():
            if cfg.budgets.max_total_searches is not None:  # the default search: passes per answer
                c, knob = cfg.replace(max_total_searches=b), "max_total_searches"
            else:  # the paper: passes per step
                c = cfg.replace(max_searches=b, min_new_searches=min(cfg.budgets.min_new_searches, b))
                knob = "max_searches"
            tot = run_rain(backend, counter, prompts[:1], args.max_new_tokens, c, judge, embedder)
            sweep.append(summarize(f"{name}: {knob}={b}", tot, greedy_s))
            raw[f"sweep_{name}_{b}"] = tot

    head = ["run", "searches", "s/iteration", "iteration ÷ greedy token", "tokens encoded/iteration",
            "encoded ÷ distinct", "RAIN ÷ greedy per answer token"]
    print(f"machine: {machine()}")
    print(f"prompts: {len(prompts)} ({args.vicuna} Vicuna + {args.advbench} AdvBench), "
          f"max_new_tokens={args.max_new_tokens}, greedy {greedy_s * 1e3:.1f} ms/token\n")
    print(table(head, rows))
    print(f"presets: {', '.join(presets)}")
    print("\nsearch budget sweep (first prompt, self-eval judge):\n")
    print(table(head, sweep))
    print("\nper prompt (self-eval judge vs greedy):\n")
    print(table(["prompt", "RAIN s", "greedy s", "RAIN tokens", "greedy tokens", "RAIN searches"],
                [[g["prompt"], r["seconds"], g["seconds"], r["tokens"], g["tokens"], r["searches"]]
                 for r, g in zip(raw[f"{presets[0]}: self-eval judge"]["per_prompt"], greedy_runs)]))
    for name in presets:
        print(f"\nphase seconds ({name}, self-eval judge):", json.dumps(
            {k: round(v, 2) for k, v in raw[f"{name}: self-eval judge"]["phases"].items()}))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
