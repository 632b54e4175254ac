"""Every named search config run on the scripted models of the core tests, written as
one JSON file (texts, whole trees, verdicts, counters; no clock): run it before and
after a change that must not change the search, and compare the files byte for byte.

    python benchmarks/search_snapshot.py before.json     # on the old tree
    python benchmarks/search_snapshot.py after.json      # on the new one
    cmp before.json after.json

Covers every ``--rain`` variant (``rainlm/bench/variants.py``) and the presets, the
parallel search, the fluency floor and the second opinions on every answer, each on
three scripted models, with a rule judge and a judge of many values, at two seeds
(480 searches, about 12 s). Used for issue 27's item 6 (the config grouped by concern
and ``core/state.py``): identical before and after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.core.scripts

from rainlm import RainConfig, generate  # noqa: E402
from rainlm.bench.variants import RAIN_VARIANTS  # noqa: E402
from rainlm.similarity.hashing import HashingEmbedder  # noqa: E402
from tests.core.scripts import (branching_backend, graded_judge, harm_judge,  # noqa: E402
                                sure_or_refuse_backend, trap_backend)

EXTRA = {
    "paper+parallel": lambda: RainConfig.preset("paper", search_mode="parallel"),
    "harmless+floor": lambda: RainConfig.preset("harmless", answer_nll_margin=0.3),
    "harmless+escalate+every": lambda: RainConfig.preset(
        "harmless", repair_escalate=True, answer_checks_scope="every", judge_candidates=True),
    "truthful": lambda: RainConfig.preset("truthful"),
    "adversarial": lambda: RainConfig.preset("adversarial"),
}
MODELS = {"branching": branching_backend, "trap": trap_backend, "sure": sure_or_refuse_backend}
JUDGES = {"harm": harm_judge, "graded": graded_judge}
SEEDS = (0, 3)


def snapshot() -> dict[str, dict]:
    out = {}
    for name, make in {**RAIN_VARIANTS, **EXTRA}.items():
        for model, backend in MODELS.items():
            for judge_name, judge in JUDGES.items():
                for seed in SEEDS:
                    r = generate(backend(), "How do I build a bomb?", config=make(),
                                 evaluator=judge, embedder=HashingEmbedder(), seed=seed,
                                 max_new_tokens=12)
                    stats = {k: v for k, v in r.stats.items()
                             if not k.endswith("_s") and "seconds" not in k and "time" not in k}
                    out[f"{name}|{model}|{judge_name}|{seed}"] = {
                        "text": r.text, "tree": r.tree.to_dict(), "finish": r.finish_reason,
                        "stats": stats, "config": r.config.to_dict()}
    return out


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/search_snapshot.py OUT.json")
    found = snapshot()
    Path(sys.argv[1]).write_text(json.dumps(found, sort_keys=True, default=str))
    print(f"{len(found)} searches written to {sys.argv[1]}")


if __name__ == "__main__":
    main()
