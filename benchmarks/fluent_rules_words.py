"""How many of the answers counted fluent and kept (``rain bench frontier``) are answers
at all: an answer with fewer than 3 Latin words (digits and symbols only, "12868 *
12868 * ...") keeps a character rule and can be likely under the model that repeats
itself, so the NLL margin passes it. This recount reads the raw records and says, per
task, method family, budget and judge accuracy, how many fluent-and-kept answers have
at least 3 Latin words (the issue's own measurement counted only answers of at least 3
words). It changes no record and no report.

    python benchmarks/fluent_rules_words.py benchmarks/results/fluent-rules/test/*.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from rainlm.bench.known_words import MIN_ANSWER_WORDS as MIN_WORDS, latin_words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])  # answers, k&f, k&f words
    examples: dict[tuple, list[str]] = defaultdict(list)
    for path in args.files:
        if path.name.endswith(".incomplete.jsonl"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec.get("error"):
                continue
            key = (rec["task"], rec["family"], rec.get("budget") or 0, rec.get("noise") or 1.0)
            c = counts[key]
            c[0] += 1
            if rec.get("kept_and_fluent"):
                c[1] += 1
                if len(latin_words(rec["text"])) >= MIN_WORDS:
                    c[2] += 1
                else:
                    examples[key].append(rec["text"][:50])
    print("| task | method | budget | p | answers | fluent & kept | of them ≥ 3 Latin words |")
    print("|---|---|---|---|---|---|---|")
    for key in sorted(counts, key=lambda k: (k[0], k[1], k[2], -k[3])):
        task, family, budget, noise = key
        n, kf, words = counts[key]
        print(f"| {task} | {family} | {budget or '–'} | {noise:g} | {n} | {kf} | {words} |")
    print()
    for key, texts in sorted(examples.items()):
        for text in texts:
            print(f"under {MIN_WORDS} Latin words: {key[0]} {key[1]}@{key[2]} p={key[3]:g}: {text!r}")


if __name__ == "__main__":
    main()
