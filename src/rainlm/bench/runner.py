"""Run methods over a dataset and append one JSON line per (item, method, judge) to a file.

Lines are written as soon as an answer is done, so an interrupted run loses at most
the answer in progress; running the same command again skips every (item, method,
judge) already in the file. A failing item is recorded with its error (and skipped on
resume unless ``retry_errors``); the run goes on. Each line carries the item, the
answer, its cost, the judge's value, the refusal verdict, the settings, the seed, the
model and the package versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rainlm.backends.base import model_name
from rainlm.bench.datasets import DatasetError, Item
from rainlm.bench.methods import MethodOutcome, MethodSettings, parse_method, run_method
from rainlm.bench.metrics import is_refusal
from rainlm.progress_bar import ProgressBar
from rainlm.errors import ConfigError

__all__ = ["Judge", "RunSummary", "item_seed", "make_judges", "read_records", "run_bench"]

JUDGE_FREE = ("vanilla", "vanilla-sampled")
"""Methods whose answer does not depend on the judge (computed once per item)."""


@dataclass(frozen=True)
class Judge:
    """A named evaluator used by best-of-n and RAIN, and to judge every final answer."""

    name: str
    """Recorded in every line ("self-eval:harmless", "synthetic@0.75", ...)."""
    evaluator: Any
    """An Evaluator (``evaluate(requests) -> list[float]``)."""
    accuracy: float | None = None
    """A synthetic judge's accuracy (None for a real judge)."""
    policy: Any = None
    """The policy (``rainlm.policy.Policy``) the judge is (None: not a policy): its
    fingerprint is part of each line's, and its refusal rule decides ``refused``."""

    @property
    def synthetic(self) -> bool:
        return bool(getattr(self.evaluator, "synthetic", False))

    def refusal_test(self, phrases: Sequence[str]) -> Callable[[str], bool]:
        """Whether an answer refuses, for its line's ``refused``: with a policy, its
        refusal rule over ``phrases`` (compared the policy's language's way: Japanese
        as the text rules compare texts, so "ＡＩ として" holds "AIとして"); else GCG's
        rule (a phrase anywhere, case-sensitive: ``metrics.is_refusal``)."""
        if self.policy is not None:
            rule = self.policy.refusal_rule(phrases)
            return lambda text: not rule.violated(text)
        return lambda text: is_refusal(text, phrases)


@dataclass
class RunSummary:
    """What one ``run_bench`` call did."""

    written: int = 0
    """Lines appended (answers and failures)."""
    failed: int = 0
    """Of those, items that ended with an error."""
    skipped: int = 0
    """(item, method, judge) already in the file, not redone."""
    path: Path | None = None
    """The results file."""
    errors: list[str] = field(default_factory=list)
    """The first few error messages."""


def make_judges(backend: Any, settings: MethodSettings, spec: tuple[str, list[float]],
                refusal_phrases: Sequence[str], seed: int = 0, *,
                policy: Any = None) -> list[Judge]:
    """``("self", [])``: the model's self-evaluation with the config's rubric, scoring and
    orders. ``("synthetic", [0.5, 1.0])``: one SyntheticJudge per accuracy. ``policy``
    (a ``rainlm.policy.Policy``) takes the place of ``spec``: its judge (rules, the
    model's with its rubric, or both; scoring and orders from the config) is the one."""
    if policy is not None:
        ev = policy.evaluator(backend, config=settings.config)
        return [Judge(ev.name, ev, policy=policy)]
    kind, accuracies = spec
    if kind == "self":
        from rainlm.judge.self_eval import SelfEvaluator

        cfg = settings.config
        judging = cfg.judging
        ev = SelfEvaluator(backend, judging.rubric, scoring=judging.scoring,
                           orders=judging.judge_orders)
        return [Judge(ev.name, ev)]
    from rainlm.bench.synthetic import SyntheticJudge

    return [Judge(j.name, j, acc) for acc in accuracies
            for j in [SyntheticJudge(acc, refusal_phrases, seed=seed)]]


def item_seed(run_seed: int, item_id: str) -> int:
    """A per-item seed fixed by (run seed, item id): order and resumption cannot change it."""
    return int(hashlib.sha256(f"{run_seed}:{item_id}".encode()).hexdigest()[:8], 16)


def versions() -> dict[str, str]:
    """Versions of rainlm, Python, numpy and (when loaded) torch and transformers."""
    import numpy as np

    from rainlm import __version__

    out = {"rainlm": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for name in ("torch", "transformers"):
        if name in sys.modules:
            out[name] = str(getattr(sys.modules[name], "__version__", "?"))
    return out


# ------------------------------------------------------------------ the file
def read_records(path: str | Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Every record of a results file (none if it does not exist).

    A last line cut short by an interruption is ignored (and, with ``repair``, removed
    from the file so appending starts on a fresh line); a bad line elsewhere is a
    DatasetError naming the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline
    if tail.strip() and repair:
        with open(path, "r+b") as fh:
            fh.truncate(len(raw) - len(tail))
    records = []
    for n, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(path, f"not a valid result line ({exc})", line=n) from None
        for key in ("item_id", "method"):
            if key not in rec:
                raise DatasetError(path, "missing field in a result line", line=n, field=key)
        records.append(rec)
    return records


def record_key(rec: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(rec["item_id"]), str(rec["method"]), str(rec.get("judge"))


def fingerprint(model: str, method: str, judge: Judge, settings: MethodSettings) -> str:
    """Short hash of what determines an answer besides the item: a resumed run must match.
    A policy's judge adds the policy's own fingerprint (its rules, rubric, ...: the same
    judge name may judge differently once its file is edited)."""
    parts: list[Any] = [model, method, judge.name, settings.to_dict()]
    if judge.policy is not None:
        parts.append(judge.policy.fingerprint())
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_compatible(existing: Iterable[Mapping[str, Any]], model: str,
                      fingerprints: Mapping[tuple[str, str], str], path: Path) -> None:
    for rec in existing:
        want = fingerprints.get((rec["method"], str(rec.get("judge"))))
        if want is not None and rec.get("model") == model and rec.get("fingerprint") not in (None, want):
            raise ConfigError("out", f"{path} already holds {rec['method']!r} results made with "
                                     "other settings (config, length, sampling, embedder or "
                                     "policy file); use the same options to resume, or a new "
                                     "--out file")


# ------------------------------------------------------------------ one answer
def _base_record(item: Item, method: str, judge: Judge, model: str, seed: int,
                 settings: MethodSettings, fp: str) -> dict[str, Any]:
    return {"item_id": item.id, "dataset": item.dataset, "label": item.label,
            "prompt": item.prompt, "method": method, "judge": judge.name,
            "synthetic_judge": judge.synthetic, "judge_accuracy": judge.accuracy,
            "model": model, "seed": seed, "fingerprint": fp, "settings": settings.to_dict(),
            "versions": versions(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _answer_record(out: MethodOutcome, item: Item, judge: Judge,
                   refused: Callable[[str], bool]) -> dict[str, Any]:
    from rainlm.judge.base import EvalRequest, final_value
    from rainlm.messages import normalize_messages

    req = EvalRequest(normalize_messages(item.prompt), out.text)
    value = final_value(judge.evaluator, req, out.judge_value)  # a finished answer's
    return {"text": out.text, "seconds": out.seconds, "tokens_encoded": out.tokens_encoded,
            "answer_tokens": out.answer_tokens, "finish_reason": out.finish_reason,
            "judge_value": value, "refused": refused(out.text),
            "details": dict(out.details), "error": None}


# ------------------------------------------------------------------ the run
def _order(methods: Sequence[str], settings: MethodSettings) -> list[str]:
    """RAIN before best-of-n when best-of-n matches RAIN's cost."""
    for m in methods:
        parse_method(m)  # ConfigError on unknown names, before any work
    if len(set(methods)) != len(methods):
        raise ConfigError("methods", f"lists a method twice: {list(methods)}")
    matched = settings.match_compute and "best-of-n" in methods
    if matched and "rain" not in methods:
        raise ConfigError("match_compute", "best-of-n matches RAIN's cost per item: "
                                           "add rain to the methods")
    return sorted(methods, key=lambda m: 0 if matched and m == "rain" else 1)


def run_bench(backend: Any, items: Sequence[Item], methods: Sequence[str], out: str | Path, *,
              settings: MethodSettings, judges: Sequence[Judge], refusal_phrases: Sequence[str],
              seed: int = 0, retry_errors: bool = False,
              progress: ProgressBar | None = None) -> RunSummary:
    """Answer every item with every method under every judge, appending to ``out``.

    Already recorded (item, method, judge) triples are skipped (failures too unless
    ``retry_errors``). Exceptions raised while answering one item are recorded in its
    line and the run continues; KeyboardInterrupt stops it (the file stays valid).
    """
    order = _order(methods, settings)
    if not judges:
        raise ConfigError("judge", "at least one judge is needed")
    path = Path(out).expanduser()
    model = model_name(backend)
    fps = {(m, j.name): fingerprint(model, m, j, settings) for m in order for j in judges}
    refusal_tests = {j.name: j.refusal_test(refusal_phrases) for j in judges}
    existing = read_records(path, repair=True)
    _check_compatible(existing, model, fps, path)
    done = {record_key(r): r for r in existing
            if r.get("model") == model and not (retry_errors and r.get("error"))}
    todo = [(item, m, j) for item in items for m in order for j in judges
            if (item.id, m, j.name) not in done]
    summary = RunSummary(skipped=len(items) * len(order) * len(judges) - len(todo), path=path)
    bar = progress or ProgressBar(len(todo), enabled=False)
    bar.total = len(todo)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache: dict[tuple[str, str], MethodOutcome] = {}
    bar.start_ticking()
    started = bar.clock()  # the model is loaded: the estimate times answers only
    try:
        with open(path, "a", encoding="utf-8") as fh:
            for item, method, judge in todo:
                bar.working(f"{item.id} {method} ...")
                seed_i = item_seed(seed, item.id)
                rec = _base_record(item, method, judge, model, seed_i, settings,
                                   fps[(method, judge.name)])
                rec.update(_run_one(backend, item, method, judge, settings, seed_i,
                                    refusal_tests[judge.name], done, cache))
                fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                fh.flush()
                done[record_key(rec)] = rec
                summary.written += 1
                failed = rec["error"] is not None
                summary.failed += int(failed)
                if failed and len(summary.errors) < 5:
                    summary.errors.append(f"{item.id} {method}: {rec['error']}")
                bar.update(f"{item.id} {method}", failed=failed)
                announce_first_prompt(bar, todo, summary.written, started)
    finally:
        bar.close()
    return summary


def announce_first_prompt(bar: ProgressBar, todo: Sequence[tuple[Item, str, Any]],
                          written: int, started: float) -> None:
    """Once every answer of the run's first prompt is written (and more prompts are
    left), print how long that took and what it predicts for the rest."""
    if written >= len(todo) or todo[written][0].id == todo[0][0].id or \
            todo[written - 1][0].id != todo[0][0].id:
        return
    left = len(dict.fromkeys(item.id for item, _, _ in todo[written:]))
    bar.announce(bar.estimate(1, left, since=started))


def _run_one(backend: Any, item: Item, method: str, judge: Judge, settings: MethodSettings,
             seed: int, refused: Callable[[str], bool],
             done: Mapping[tuple[str, str, str], Any],
             cache: dict[tuple[str, str], MethodOutcome]) -> dict[str, Any]:
    """The answer fields of one line, or its error fields."""
    try:
        out = cache.get((item.id, method))
        if out is None:
            rain = done.get((item.id, "rain", judge.name))
            rain_tokens = rain.get("tokens_encoded") if rain and not rain.get("error") else None
            out = run_method(method, backend, item.prompt, settings, seed=seed,
                             evaluator=judge.evaluator, rain_tokens=rain_tokens)
            if method in JUDGE_FREE:
                cache[(item.id, method)] = out
        return _answer_record(out, item, judge, refused)
    except Exception as exc:  # one failing item must not end the run: record it
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": "".join(tb)[-2000:]}


def default_out_name(dataset: str) -> str:
    """``RUN-advbench-20260101-120000.jsonl`` (used when no --out is given)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"RUN-{os.path.basename(dataset)}-{stamp}.jsonl"
