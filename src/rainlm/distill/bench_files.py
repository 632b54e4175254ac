"""Answers from bench results files: the JSONL lines ``rain bench run`` and ``rain bench
frontier`` write.

- ``rain bench run`` lines (a ``judge`` field): method "rain" is RAIN, "vanilla" is
  greedy; the value is the line's ``judge_value`` (the judge's verdict on the final
  answer, in [-1, 1]). RAIN and greedy are compared under the same judge.
- ``rain bench frontier`` lines (a ``task`` field): methods "rain:VARIANT@B" are RAIN,
  "greedy" is greedy; the value is the exact rule's verdict, ``failed`` (+1 kept, -1
  broken), whatever the accuracy of the judge RAIN searched with. That judge is named
  RULE@P (``banned-words@1``, ``refusal-prefix@0.8``) for ``--judge``.

Other methods (best-of-n, sampling, ARGS) are read as kind "other" and not paired.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rainlm.distill.answers import (Answer, SourceError, chat_messages, is_budget_limited,
                                    prompt_key)

__all__ = ["read_bench_file"]

REQUIRED = ("item_id", "method", "prompt")


def read_bench_file(path: str | Path) -> list[Answer]:
    """Every answer of a results file, in file order.

    A last line cut short by an interrupted run (no newline, not JSON) is ignored; any
    other bad line is a SourceError naming the line (and field).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(path, f"cannot read it ({exc.strerror or exc})") from None
    lines = raw.split(b"\n")
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except RecursionError:  # nested deeper than Python's parser goes: not a results line
            raise SourceError(path, "a JSON value nested too deeply to read; pass results "
                                    "files that `rain bench run` or `rain bench frontier` "
                                    "wrote", line=n) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if n == len(lines):  # the unfinished last line of an interrupted run
                continue
            raise SourceError(path, f"not a JSON line ({exc}); pass results files that "
                                    "`rain bench run` or `rain bench frontier` wrote",
                              line=n) from None
        out.append(_answer(path, n, row))
    return out


def _answer(path: Path, n: int, row: Any) -> Answer:
    if not isinstance(row, dict):
        raise SourceError(path, f"expected a JSON object, got {type(row).__name__}", line=n)
    for key in REQUIRED:
        if key not in row:
            raise SourceError(path, "missing; pass results files that `rain bench run` or "
                                    "`rain bench frontier` wrote", line=n, field=key)
    settings = row.get("settings") if isinstance(row.get("settings"), dict) else {}
    prompt = chat_messages(row["prompt"], system=settings.get("system"))
    if prompt is None:
        raise SourceError(path, "must be a non-empty string or a list of chat messages "
                                "with a user message", line=n, field="prompt")
    text = row.get("text", "")
    if text is None and row.get("error"):
        text = ""
    if not isinstance(text, str):
        raise SourceError(path, f"must be a string, got {type(text).__name__}", line=n,
                          field="text")
    method, model, item = str(row["method"]), str(row.get("model", "")), str(row["item_id"])
    details = row.get("details") if isinstance(row.get("details"), Mapping) else {}
    common = dict(prompt=prompt[0], chat=prompt[1], text=text, method=method,
                  source=f"{path}, line {n}", model=model,
                  budget_limited=is_budget_limited(row.get("finish_reason"),
                                                   row.get("budget_exhausted"),
                                                   details.get("budget_exhausted")),
                  error=str(row["error"]) if row.get("error") else None)
    if "task" in row:
        return _frontier(path, n, row, common, item)
    return _bench_run(path, n, row, common, item)


def _frontier(path: Path, n: int, row: Mapping[str, Any], common: dict[str, Any],
              item: str) -> Answer:
    method = common["method"]
    kind = ("greedy" if method == "greedy" else
            "rain" if method == "rain" or method.startswith("rain:") else "other")
    rule = row.get("rule") if isinstance(row.get("rule"), Mapping) else {}
    rule_name = str(rule.get("name") or row["task"])
    noise = row.get("noise")
    if noise is not None and (isinstance(noise, bool) or not isinstance(noise, (int, float))):
        raise SourceError(path, f"must be a number (the judge's accuracy) or null, got "
                                f"{noise!r}", line=n, field="noise")
    judge = rule_name if noise is None else f"{rule_name}@{float(noise):g}"
    failed = row.get("failed")
    if failed is not None and not isinstance(failed, bool):
        raise SourceError(path, f"must be true, false or absent, got {failed!r}", line=n,
                          field="failed")
    value = None if failed is None else (-1.0 if failed else 1.0)
    group = ("frontier", str(path), common["model"], str(row["task"]), item,
             prompt_key(common["prompt"]))
    return Answer(kind=kind, group=group, judge=judge, value=value, **common)


def _bench_run(path: Path, n: int, row: Mapping[str, Any], common: dict[str, Any],
               item: str) -> Answer:
    method = common["method"]
    kind = ("greedy" if method == "vanilla" else
            "rain" if method == "rain" or method.startswith("rain:") else "other")
    if "judge" not in row and "judge_value" not in row:
        raise SourceError(path, "neither a `rain bench run` line (no 'judge') nor a "
                                "`rain bench frontier` line (no 'task'); pass results files "
                                "those commands wrote", line=n)
    value = row.get("judge_value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise SourceError(path, f"must be a number in [-1, 1] or null, got {value!r}", line=n,
                          field="judge_value")
    judge = None if row.get("judge") is None else str(row["judge"])
    group = ("bench", str(path), common["model"], str(judge), item, prompt_key(common["prompt"]))
    return Answer(kind=kind, group=group, judge=judge,
                  value=None if value is None else float(value), **common)
