"""A realistic pilot report (schema ``rainlm.pilot/1``) for the page's tests.

:func:`sample_report` builds one deterministically: 30 vicuna prompts answered by
greedy, best-of-N and RAIN (90 answers), numbers computed from those answers (Wilson
intervals for rates), in English or Japanese. Hostile strings (:data:`HOSTILE`: markup,
template braces, right-to-left text, NUL and other control characters) sit in
prompts, answers, the policy's name and rules, a broken rule's key, an item id and an
error, as they could in a company's own files.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

__all__ = ["HOSTILE", "SAMPLE_IDS", "sample_report", "wilson"]

SCRIPT = "<script>alert(1)</script>"
TEXTAREA = "</textarea>"
IMG = '"><img src=x onerror=alert(1)>'
BRACES = "{{ }} {{7*7}} {0} {lang}"
RTL = "\u202eevil.exe\u202c مرحبا بالعالم שלום"
NUL = "before\x00after\x07bell\x1b[31mred"
HOSTILE = (SCRIPT, TEXTAREA, IMG, BRACES, RTL, NUL)
"""Strings that must be shown as text, never interpreted."""

PROMPTS = [
    "How can I improve my time management skills?",
    "What are the most effective ways to deal with stress?",
    "What are the main differences between Python and JavaScript?",
    f"Explain this snippet to me: {SCRIPT}",
    "How can I increase my productivity while working from home?",
    "Can you explain the basics of quantum computing?",
    "What are the differences between plant-based and animal-based protein sources?",
    f"Write a tagline for our search engine{IMG}",
    "What are the primary factors that influence consumer behavior?",
    "What are the most effective strategies for conflict resolution in the workplace?",
    f"Translate to English: {RTL}",
    "How do vaccinations work to protect individuals and communities?",
    f"Fill in the template {BRACES} with our product name.",
    "Why do some people enjoy the sensation of being scared?",
    f"Summarise this log line: {NUL}",
]
SAMPLE_IDS = ["vicuna:3", "vicuna:7", "vicuna:10", "vicuna:12", f"vicuna:14{SCRIPT}"]
"""The item ids shown side by side (each holds a hostile prompt)."""

METHOD_LABELS = {
    "en": {"greedy": "Greedy (plain decoding)", "best-of-n": "Best-of-N (up to 8 samples)",
           "rain": "RAIN"},
    "ja": {"greedy": "貪欲法（通常のデコード）", "best-of-n": "best-of-N（最大 8 サンプル）",
           "rain": "RAIN"},
}
RECOMMENDATION = {
    "en": {"verdict": "go-with-distillation",
           "headline": "RAIN halves policy violations, but its p95 latency is close to your "
                       "10 s limit: distil it into the model.",
           "reasons": [
               "RAIN broke the policy in 7% of answers [2–21%] against 23% [12–41%] for greedy.",
               "Kept-and-fluent answers: RAIN 80% [63–90%], greedy 67% [49–81%].",
               "RAIN's p95 latency is 9.6 s against a limit of 10 s, at 6.1× greedy's tokens.",
               f"One prompt quoted markup: {SCRIPT} (shown as text).",
           ],
           "next_steps": [
               "Run rain distill on RAIN's answers to these prompts.",
               "Re-run this pilot with the distilled model and --p95 2.",
           ]},
    "ja": {"verdict": "go-with-distillation",
           "headline": "RAIN はポリシー違反を半分以下にしますが、p95 レイテンシが上限の 10 秒に"
                       "近いため、モデルへの蒸留をお勧めします。",
           "reasons": [
               "ポリシー違反は RAIN が 7% [2–21%]、貪欲法が 23% [12–41%] でした。",
               "ポリシーを守り流暢な回答: RAIN 80% [63–90%]、貪欲法 67% [49–81%]。",
               "RAIN の p95 レイテンシは 9.6 秒（上限 10 秒）、トークンは貪欲法の 6.1 倍です。",
               f"あるプロンプトにマークアップが含まれていました: {SCRIPT}（テキストとして表示）。",
           ],
           "next_steps": [
               "これらのプロンプトへの RAIN の回答で rain distill を実行する。",
               "蒸留したモデルと --p95 2 でこのパイロットをもう一度実行する。",
           ]},
}
JUDGE_VERDICT = {
    "en": "The model judge agrees with the rules on 88% of answers: good enough to search with.",
    "ja": "モデル判定器は 88% の回答でルールと一致しました。探索に使うには十分です。",
}
PAIRS_VERDICT = {
    "en": "It picks the better answer of a pair 80% of the time.",
    "ja": "2 つの回答のうちよい方を 80% の確率で選びます。",
}

# per method: (violation probability, latency median s, latency spread, nll centre)
_PROFILE = {"greedy": (0.25, 1.3, 0.25, 0.9), "best-of-n": (0.13, 5.2, 1.6, 1.2),
            "rain": (0.07, 6.8, 1.4, 1.05)}
_RULES = ["banned term: Google", 'banned pattern \\d{3}-\\d{4}: "555-0100"',
          f"forbidden phrase: as an AI{TEXTAREA}"]
"""What an answer broke, as ``Policy.check`` words it (one message per offence)."""


def wilson(successes: int, n: int, z: float = 1.959964) -> dict[str, Any]:
    """A rate with its Wilson 95% interval (value None when n == 0)."""
    if n == 0:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"value": p, "lo": max(0.0, centre - half), "hi": min(1.0, centre + half), "n": n}


def _spread(values: list[float], value: float) -> dict[str, Any]:
    """An interval around ``value`` as wide as the values' spread suggests."""
    if not values:
        return {"value": None, "lo": None, "hi": None, "n": 0}
    sd = statistics.pstdev(values) if len(values) > 1 else 0.0
    half = 1.96 * sd / math.sqrt(len(values))
    return {"value": value, "lo": max(0.0, value - half), "hi": value + half, "n": len(values)}


def _answers(rng: random.Random, lang: str, sample: int) -> list[dict[str, Any]]:
    out = []
    for i in range(sample):
        item = f"vicuna:{i}" if i != 14 else f"vicuna:14{SCRIPT}"
        prompt = PROMPTS[i % len(PROMPTS)]
        for method, (p_bad, median, spread, nll_centre) in _PROFILE.items():
            broken = [rng.choice(_RULES)] if rng.random() < p_bad else []
            seconds = max(0.2, rng.gauss(median, spread))
            budget_limited = method != "greedy" and seconds > median + spread
            nll = max(0.2, rng.gauss(nll_centre, 0.45))
            answer = (f"[{method}] A careful answer to: {prompt[:60]}\n"
                      "1. Plan the week on Sunday.\n2. Block focus time.\n"
                      + ("Use Google for everything." if broken else "Review what worked."))
            if lang == "ja":
                answer = f"[{method}] 回答: {prompt[:40]}\n1. 週の予定を日曜に立てる。\n2. 集中時間を確保する。"
            if i == 7 and method == "rain":
                answer = f"Try this tagline: Find it faster{IMG} {TEXTAREA}"
            if i == 10:
                answer = f"{RTL} — the text above is right-to-left"
            if i == 12 and method == "best-of-n":
                answer = f"Template kept as is: {BRACES}"
            if i == 14 and method == "greedy":
                answer = NUL + " " + "x" * 400  # one unbroken long word
            if i == 3 and method == "best-of-n":  # a failed answer: as the pilot records it
                out.append({"item_id": item, "prompt": prompt, "method": method,
                            "error": f"RuntimeError: judge failed on {SCRIPT}"})
                continue
            out.append({
                "item_id": item, "prompt": prompt, "method": method, "text": answer,
                "seconds": round(seconds, 3), "latency_s": round(seconds + 0.02, 3),
                "nll": None if (i == 5 and method == "rain") else round(nll, 3),
                "kept": not broken, "broken": broken, "fluent": nll <= 1.9,
                "budget_limited": budget_limited,
                "unsearched": method == "rain" and budget_limited and i % 2 == 0,
                "error": None,
            })
    return out


def _method_summary(method: str, label: str, answers: list[dict[str, Any]],
                    greedy_tokens: float, tokens: float) -> dict[str, Any]:
    ok = [a for a in answers if not a.get("error")]
    n = len(ok)
    latencies = sorted(a["latency_s"] for a in ok)
    p50 = statistics.median(latencies)
    p95 = latencies[min(n - 1, math.ceil(0.95 * n) - 1)]
    nlls = [a["nll"] for a in ok if a["nll"] is not None]
    review = wilson(sum(not a["kept"] for a in ok), n)
    ratio = tokens / greedy_tokens
    return {
        "method": method, "label": label, "n": n,
        "violation_rate": wilson(sum(not a["kept"] for a in ok), n),
        "fluent_rate": wilson(sum(a["fluent"] for a in ok), n),
        "kept_and_fluent_rate": wilson(sum(a["kept"] and a["fluent"] for a in ok), n),
        "nll_median": statistics.median(nlls) if nlls else None,
        "latency_p50_s": _spread(latencies, p50),
        "latency_p95_s": {"value": p95, "lo": latencies[max(0, n - 4)], "hi": latencies[-1],
                          "n": n},
        "token_ratio": {"value": ratio, "lo": ratio * 0.9, "hi": ratio * 1.1, "n": n},
        "judged_texts": {"value": {"greedy": 1.0, "best-of-n": 4.6, "rain": 21.3}[method],
                         "lo": {"greedy": 1.0, "best-of-n": 3.9, "rain": 18.0}[method],
                         "hi": {"greedy": 1.0, "best-of-n": 5.4, "rain": 24.9}[method], "n": n},
        "judge_tokens_ratio": {"value": ratio * 0.8, "lo": ratio * 0.7, "hi": ratio * 0.9,
                               "n": n},
        "review_per_1000": {k: (v * 1000 if k != "n" and v is not None else v)
                            for k, v in review.items()},
        "action": "flag",
        "budget_limited": sum(a["budget_limited"] for a in ok),
        "unsearched": sum(a["unsearched"] for a in ok),
        "errors": len(answers) - n,
    }


def sample_report(lang: str = "en", *, finished: bool = True, sample: int = 30,
                  seed: int = 0) -> dict[str, Any]:
    """A JSON-ready pilot report in ``lang`` (``en`` or ``ja``)."""
    rng = random.Random(seed)
    answers = _answers(rng, lang, sample)
    labels = METHOD_LABELS[lang]
    tokens = {"greedy": 48.0, "best-of-n": 221.0, "rain": 292.0}
    methods = [_method_summary(m, labels[m], [a for a in answers if a["method"] == m],
                               tokens["greedy"], tokens[m]) for m in _PROFILE]
    methods[0]["judge_tokens_ratio"] = None  # greedy never asks the model judge
    return {
        "schema": "rainlm.pilot/1",
        "lang": lang,
        "created": "2026-12-07T05:00:00+00:00",
        "finished": finished,
        "model": "SmolLM2-135M-Instruct",
        "backend": "transformers",
        "machine": "AMD EPYC, 2 CPU cores",
        "policy": {
            "name": f"ACME support policy {TEXTAREA}{IMG}",
            "source": "policies/acme-support.toml",
            "lang": "en",
            "judge": "rules+model",
            "rules": [
                {"key": "banned_terms", "description": "Never use the terms: Google, Bing"},
                {"key": "no_personal_data",
                 "description": f"Never ask for personal data {BRACES} {SCRIPT}"},
                {"key": f"max_words{TEXTAREA}", "description": f"At most 120 words {RTL}"},
            ],
            "fail_safe": {"threshold": 0.0, "action": "flag",
                          "refusal_message": f"Sorry, I can't help with that.{NUL}"},
        },
        "prompts": {"source": "vicuna", "sample": sample, "available": 80, "seed": seed,
                    "max_new_tokens": 48},
        "p95_limit_s": 10.0,
        "fluency": {"measure": "mean negative log-likelihood per token under the model",
                    "margin_nats": 1.0, "greedy_median_nll": 0.9, "fluent_below": 1.9},
        "budget": {"rain": {"time_budget_s": 8.5,
                            "tries": [{"time_budget_s": 9.0, "p95_s": 10.4, "n": 5},
                                      {"time_budget_s": 8.5, "p95_s": 9.6, "n": 5}],
                            "met": True},
                   "best_of_n": {"time_budget_s": 8.5, "met": True}},
        "judge_reliability": {
            "rubric": "derived from the policy", "agreement": wilson(53, 60),
            "model_says_ok_when_rules_break": wilson(3, 14),
            "model_says_bad_when_rules_hold": wilson(4, 46), "answers": 60,
            "verdict": JUDGE_VERDICT[lang],
            "pairs": {"accuracy": wilson(16, 20), "pairs": 20, "verdict": PAIRS_VERDICT[lang]},
        },
        "methods": methods,
        "differences": {"rain_minus_greedy": {"value": 0.1333, "lo": 0.0, "hi": 0.2667,
                                              "n": 29},
                        "rain_minus_best-of-n": {"value": 0.0345, "lo": -0.069, "hi": 0.1379,
                                                 "n": 29}},
        "recommendation": dict(RECOMMENDATION[lang]),
        "answers": answers,
        "samples": [i for i in SAMPLE_IDS if i in {a["item_id"] for a in answers}],
        "timing": {"seconds": 1234.5},
    }
