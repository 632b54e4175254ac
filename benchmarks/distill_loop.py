"""The distillation loop end to end (issue 15): RAIN's answers on a training split become
DPO pairs, a LoRA is trained on them, and on a held-out split the distilled model's
greedy answers are compared with the base model's greedy answers and with RAIN on the
base model.

The rule is the frontier's ``no-you`` task (never address the reader: "you", "your", …),
an exact judge of partial text that applies to every prompt, so a model can learn it.

1. **collect** — ``rain bench frontier``'s loop on the training split (prompts
   ``--train-offset`` …): greedy, and RAIN (the default search, ``--budget`` passes, the
   exact rule as its judge) where greedy breaks the rule (``train.jsonl``, resumable);
2. **export** — ``rain distill export``'s selection: RAIN's answer (kept the rule) chosen
   over greedy's (broke it), budget-limited answers excluded, as DPO pairs and SFT rows
   (``data-NAME/``);
3. **train** — ``rain distill train`` (its default settings: DPO, LoRA; ``--train-option``
   changes them) into ``model-NAME/`` (resumable from its checkpoints; skipped when the
   model is there);
4. **compare** — on the held-out split (the first ``--held-out`` prompts of the task, none
   of them trained on), every prompt, whether or not greedy breaks the rule: base greedy,
   distilled greedy (run one after the other per prompt, so machine load hits both
   alike) and RAIN on the base model (``compare.jsonl``, resumable).

Printed and written to ``summary.md``: violation rate (Wilson 95% interval), seconds per
answer token and its ratio to base greedy, and sanity checks that the distilled model
still answers (mean answer tokens, answers cut by the length limit, the share of the
prompt's content words that its answer uses — on topic — and repeated 3-grams).

    .venv/bin/python benchmarks/distill_loop.py [--train 40] [--held-out 24] [--budget 16]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, machine, table

OUT = REPO / "benchmarks" / "results" / "distill"
WORD = re.compile(r"[A-Za-z']+")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=40, help="training prompts (default 40)")
    ap.add_argument("--train-offset", type=int, default=24,
                    help="first training prompt in the task's order (default 24: after the "
                         "held-out split)")
    ap.add_argument("--held-out", type=int, default=24, help="held-out prompts, the task's "
                                                             "first ones (default 24)")
    ap.add_argument("--budget", type=int, default=16, help="RAIN's passes per answer (default 16)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"results folder (default {OUT})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-option", action="append", default=[], metavar="OPTION",
                    help="passed to `rain distill train` (repeatable, e.g. --train-option=--epochs=4); "
                         "default: none (its default settings)")
    ap.add_argument("--name", default="default",
                    help="name of this training run: its data and model go to data-NAME/ and "
                         "model-NAME/, its answers are labelled 'distilled greedy (NAME)'; "
                         "collected and base answers are shared between names")
    args = ap.parse_args()
    if args.train_offset < args.held_out:
        ap.error("--train-offset must be at least --held-out (no training prompt is held out)")
    return args


def collect(backend: Any, task: Any, args: argparse.Namespace) -> Path:
    from rainlm.bench.frontier import FrontierPlan, run_frontier
    from rainlm.bench.methods import MethodSettings
    from rainlm.request import GenerationParams

    items = task.items(data_dir=None, limit=args.train, offset=args.train_offset)
    plan = FrontierPlan(task=task, noise=(1.0,), best_of=(), args=False, sampled=False,
                        rain=("default",), budgets=(args.budget,), seed=args.seed,
                        settings=MethodSettings(params=GenerationParams(
                            max_new_tokens=task.max_new_tokens)))
    path = args.out / "train.jsonl"
    started = time.monotonic()
    summary = run_frontier(backend, items, plan, path,
                           on_prompt=lambda left, _n: print(f"  collect: {left} prompts left",
                                                            flush=True))
    print(f"collect: {summary.written} answers written, {summary.skipped} resumed, "
          f"{time.monotonic() - started:.0f} s")
    return path


def export(train_file: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    from rainlm.distill.export import ExportOptions, export_pairs
    from rainlm.distill.formats import write_formats

    options = ExportOptions()
    result = export_pairs([train_file], options)
    data = args.out / f"data-{args.name}"
    write_formats(result.pairs, data, ("dpo", "sft"), manifest=result.summary(options))
    summary = result.summary()
    print(f"export: {summary['kept']} pairs kept of {summary['candidates']}; dropped "
          f"{summary['dropped']}")
    return data, summary


def train_model(data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``rain distill train`` (its defaults, changed by ``--train-option``), in its own
    process (so its peak memory is training's alone); skipped when the model folder is
    complete."""
    model_dir = args.out / f"model-{args.name}"
    info_file = model_dir / "rainlm-distill.json"
    if not info_file.exists():
        subprocess.run([sys.executable, "-m", "rainlm.cli.main", "distill", "train", str(data),
                        "--out", str(model_dir), *args.train_option], check=True)
    info = json.loads(info_file.read_text())
    print(f"train: {info['steps']} steps, loss {info['final_loss']}, {info['seconds']} s, "
          f"peak {info['peak_memory_mib']} MiB")
    return info


def compare(base: Any, distilled: Any, task: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from rainlm.bench.frontier import RAIN_VARIANTS
    from rainlm.bench.methods import MethodSettings, run_method
    from rainlm.bench.runner import item_seed
    from rainlm.request import GenerationParams

    rule = task.rule_for("", data_dir=None)
    settings = MethodSettings(params=GenerationParams(max_new_tokens=task.max_new_tokens))
    rain = settings.with_params(config=RAIN_VARIANTS["default"]().replace(
        max_total_searches=args.budget, budget_fallback="greedy"))
    path = args.out / "compare.jsonl"
    done = {(r["item_id"], r["method"]): r for r in _read_jsonl(path)}
    runs = (("base greedy", "vanilla", base, settings, None),
            (f"distilled greedy ({args.name})", "vanilla", distilled, settings, None),
            (f"RAIN@{args.budget} on base", "rain", base, rain, rule))
    with open(path, "a", encoding="utf-8") as fh:
        for n, item in enumerate(task.items(data_dir=None, limit=args.held_out, offset=0)):
            seed = item_seed(args.seed, item.id)
            for label, method, backend, s, judge in runs:
                if (item.id, label) in done:
                    continue
                out = run_method(method, backend, item.prompt, s, seed=seed, evaluator=judge)
                rec = {"item_id": item.id, "prompt": item.prompt, "method": label,
                       "text": out.text, "answer_tokens": out.answer_tokens,
                       "finish_reason": out.finish_reason, "seconds": round(out.seconds, 4),
                       "tokens_encoded": out.tokens_encoded, "violated": rule.violated(out.text),
                       "budget_exhausted": bool(out.details.get("budget_exhausted", False))}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                fh.flush()
                done[(item.id, label)] = rec
            print(f"  compare: {n + 1}/{args.held_out} prompts", flush=True)
    return [r for r in done.values()]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def content_words(text: str) -> set[str]:
    from rainlm.judge.rules import read_list

    stop = set(read_list("stopwords"))
    return {w for w in (m.lower() for m in WORD.findall(text)) if len(w) >= 3 and w not in stop}


def repeated_trigrams(text: str) -> float:
    """Share of the answer's word 3-grams that occurred earlier in it (0: no loops)."""
    words = [w.lower() for w in WORD.findall(text)]
    grams = list(zip(words, words[1:], words[2:]))
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def summarize(rows: list[dict[str, Any]], train_info: dict[str, Any],
              export_summary: dict[str, Any], args: argparse.Namespace) -> str:
    from rainlm.bench.metrics import wilson_interval

    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["item_id"]] = r
    base = by["base greedy"]
    items = sorted(set.intersection(*(set(v) for v in by.values())))
    base_spt = sum(base[i]["seconds"] for i in items) / max(1, sum(base[i]["answer_tokens"] for i in items))
    out_rows = []
    for label, answers in by.items():
        got = [answers[i] for i in items]
        k, n = sum(r["violated"] for r in got), len(got)
        lo, hi = wilson_interval(k, n)
        spt = sum(r["seconds"] for r in got) / max(1, sum(r["answer_tokens"] for r in got))
        on_topic = [len(content_words(r["text"]) & content_words(r["prompt"]))
                    / max(1, len(content_words(r["prompt"]))) for r in got]
        out_rows.append([label, n, f"{k / n:.0%} [{lo:.0%}–{hi:.0%}]", f"{spt:.3f}",
                         f"{spt / base_spt:.2f}", f"{sum(r['answer_tokens'] for r in got) / n:.1f}",
                         sum(r["finish_reason"] == "length" for r in got),
                         f"{sum(on_topic) / n:.2f}",
                         f"{sum(repeated_trigrams(r['text']) for r in got) / n:.2f}",
                         sum(r["budget_exhausted"] for r in got)])
    headers = ["method", "prompts", "violation rate [95% CI]", "s / answer token",
               "÷ base greedy", "answer tokens", "cut by length", "prompt's content words in the answer",
               "repeated 3-grams", "budget-limited"]
    base_k = sum(base[i]["violated"] for i in items)
    dist_k = sum(by[f"distilled greedy ({args.name})"][i]["violated"] for i in items)
    lines = [f"Machine: {machine()}.",
             f"Train split: {args.train} prompts from {args.train_offset}; pairs kept "
             f"{export_summary['kept']} of {export_summary['candidates']} "
             f"(dropped: {export_summary['dropped']}).",
             f"Training: {train_info.get('steps')} steps, "
             f"{train_info.get('seconds')} s, peak {train_info.get('peak_memory_mib')} MiB "
             f"(settings: {train_info.get('settings', {})}).",
             "", table(headers, out_rows), "",
             f"Distilled greedy violations ÷ base greedy's: {dist_k}/{base_k} = "
             f"{dist_k / base_k:.2f}" if base_k else "Base greedy kept the rule everywhere."]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from rainlm import load_backend
    from rainlm.bench.tasks import get_task

    task = get_task("no-you")
    base = load_backend()
    train_file = collect(base, task, args)
    data, export_summary = export(train_file, args)
    train_info = train_model(data, args)
    distilled = load_backend(str(args.out / f"model-{args.name}"))
    rows = compare(base, distilled, task, args)
    text = summarize(rows, train_info, export_summary, args)
    print(text)
    (args.out / f"summary-{args.name}.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
