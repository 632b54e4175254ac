"""The compute–quality frontier: every method on the same prompts, judged by the same
exact rule (or a noisy copy of it), with the same accounting.

For each prompt of a task (:mod:`rainlm.bench.tasks`) the runner answers with greedy
decoding first (the banned-words task builds its rule from that answer), then with
every planned method under every judge accuracy ``p`` (the rule's verdict flipped with
probability 1 − p, :class:`~rainlm.judge.rules.NoisyJudge`):

- ``greedy``, ``sampled`` (one sample; both ignore the judge);
- ``best-of-N``: N sampled answers, the judge keeps the best. Answer i of every N is
  seeded by (seed, i), so best-of-N's answers are the first N of best-of-M's; the
  answers are drawn once per N and re-judged under each p (same answers, same tokens);
- ``best-until-N``: best-of-N that stops at the first answer the judge accepts (value
  1, :func:`~rainlm.bench.best_of_until.best_of_until`, one answer per round), at most
  N; seeded as best-of-N, so its answers are best-of-N's first ones; drawn per p (where
  it stops depends on the judge) in one run up to the largest N, each smaller N's
  answer and cost being those of its own rounds (:func:`until_outcome`: what a run of
  its own returns and spends). Both best-of families run at every sampling
  temperature of the plan (RAIN's simulation temperature always among them); a
  temperature other than 1 is in the label: ``best-of-8@t0.7``, ``best-until-8@t0.7``;
- ``args``: ARGS-greedy (:mod:`rainlm.bench.args`);
- ``rain:VARIANT@B``: RAIN with a named search config (:data:`RAIN_VARIANTS`) and a total
  budget of B search passes per answer (``max_total_searches``), finished greedily if
  the budget runs out.

Compute is the model's tokens encoded (prefill + decode, from the backend's counters,
each answer from a cold prefix cache, judging included when the judge is the model) and,
separately, the texts sent to the judge. Every answer is then scored for fluency, outside
that accounting (:mod:`rainlm.bench.frontier_scoring`: ``nll``, ``known_words``,
``fluent``, ``kept_and_fluent``). One JSON line per (prompt, method, p) is appended as
soon as it is done (best-of-N's lines for every p at once, best-until-N's for every N
at once); running the same command again resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rainlm.backends.base import model_name
from rainlm.bench.datasets import Item
from rainlm.bench.frontier_scoring import AnswerScorer, kept_and_fluent
from rainlm.bench.methods import (MethodOutcome, MethodSettings, draw_answers, first_best,
                                  pick_best, run_method)
from rainlm.bench.peers import (UNTIL_ACCEPT, UNTIL_ROUND, best_until, label_suffix,
                                parse_peer, peer_label)
from rainlm.judge.rules import NoisyJudge, Rule
from rainlm.bench.runner import item_seed, read_records, versions
from rainlm.bench.tasks import Task
from rainlm.bench.variants import RAIN_VARIANTS
from rainlm.config import RainConfig
from rainlm.errors import ConfigError
from rainlm.fluency import FLUENCY_MARGIN
from rainlm.messages import normalize_messages

__all__ = ["FrontierPlan", "FrontierSummary", "RAIN_VARIANTS", "UNTIL_ACCEPT", "UNTIL_ROUND",
           "answer_key", "judge_for", "method_labels", "parse_peer", "parse_rain_variants",
           "peer_label", "resumable_records", "run_frontier"]


@dataclass(frozen=True)
class FrontierPlan:
    """What one frontier run computes (shared by every prompt)."""

    task: Task
    """The task: prompts, rule, answer length."""
    noise: tuple[float, ...] = (1.0, 0.8)
    """Judge accuracies p: 1.0 is the exact rule."""
    best_of: tuple[int, ...] = (2, 4, 8, 16, 32)
    """N of the best-of-N points."""
    args: bool = True
    """Run ARGS-greedy."""
    sampled: bool = True
    """Run one plain sample."""
    rain: tuple[str, ...] = ("default", "paper")
    """RAIN variants (names in RAIN_VARIANTS)."""
    budgets: tuple[int, ...] = (8, 16, 32)
    """RAIN's total search budgets (passes per answer)."""
    settings: MethodSettings = field(default_factory=MethodSettings)
    """Sampling, ARGS and embedder settings (max_new_tokens is the task's; the best-of
    families' temperature is ``sample_temperatures``', ``sampled``'s is this one's)."""
    seed: int = 0
    """Run seed; each prompt's seed derives from it and the prompt id."""
    sample_temperatures: tuple[float, ...] = (1.0, 0.7)
    """Temperatures best-of-N and best-until-N sample at, one family each; the
    simulation temperature of every planned RAIN variant is added
    (:attr:`peer_temperatures`), so the peers sample at RAIN's imaginations' temperature
    too (from the top 50, ``MethodSettings.top_k``, where a calm variant imagines from
    its ``simulation_top_k``)."""
    best_until: bool = True
    """Run best-until-N (best-of-N that stops at its first accepted answer)."""
    fluency_margin: float = FLUENCY_MARGIN
    """An answer is fluent when its NLL per token is at most greedy's on the same prompt
    plus this many nats (fixed before the run; a resumed run must keep it)."""

    def __post_init__(self) -> None:
        for p in self.noise:
            if not 0.0 <= p <= 1.0:
                raise ConfigError("noise", f"judge accuracies must be in [0, 1], got {p}")
        if any(not isinstance(n, int) or n < 1 for n in self.best_of):
            raise ConfigError("best_of", f"must be integers >= 1, got {self.best_of}")
        if any(not isinstance(b, int) or b < 1 for b in self.budgets):
            raise ConfigError("budgets", f"must be integers >= 1, got {self.budgets}")
        temps = self.sample_temperatures
        if not temps or len(set(temps)) != len(temps) or any(
                isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.05 <= t < 100
                for t in temps):
            raise ConfigError("sample_temperatures", "must be distinct numbers in [0.05, 100), "
                                                     f"at least one, got {temps}")
        margin = self.fluency_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 20:
            raise ConfigError("fluency_margin", f"must be in [0, 20] nats, got {margin!r}")
        parse_rain_variants(",".join(self.rain)) if self.rain else None

    def method_settings(self, config: RainConfig | None = None) -> MethodSettings:
        changes: dict[str, Any] = {"max_new_tokens": self.task.max_new_tokens}
        if config is not None:
            changes["config"] = config
        return self.settings.with_params(**changes)

    def rain_config(self, variant: str, budget: int) -> RainConfig:
        return RAIN_VARIANTS[variant]().replace(max_total_searches=budget,
                                                budget_fallback="greedy")

    @property
    def peer_temperatures(self) -> tuple[float, ...]:
        """``sample_temperatures`` and then every planned RAIN variant's simulation
        temperature not among them."""
        temps = [float(t) for t in self.sample_temperatures]
        for variant in self.rain:
            t = RAIN_VARIANTS[variant]().simulation.simulation_temperature
            if float(t) not in temps:
                temps.append(float(t))
        return tuple(temps)

    def peer_settings(self, temperature: float) -> MethodSettings:
        """The method settings of a best-of family sampled at ``temperature``."""
        return dataclasses.replace(self.method_settings(), temperature=float(temperature))


@dataclass
class FrontierSummary:
    """What one ``run_frontier`` call did."""

    written: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def parse_rain_variants(spec: str) -> tuple[str, ...]:
    """``"default,paper"`` -> ("default", "paper"); ConfigError naming ``rain`` otherwise."""
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    for n in names:
        if n not in RAIN_VARIANTS:
            raise ConfigError("rain", f"unknown RAIN variant {n!r}; choose from {sorted(RAIN_VARIANTS)}")
    return names


def method_labels(plan: FrontierPlan) -> list[tuple[str, float | None]]:
    """Every (method label, judge accuracy) the plan records per prompt, in run order."""
    out: list[tuple[str, float | None]] = [("greedy", None)]
    if plan.sampled:
        out.append(("sampled", None))
    kinds = ("best-of", "best-until") if plan.best_until else ("best-of",)
    out += [(peer_label(kind, n, t), p) for kind in kinds for t in plan.peer_temperatures
            for n in plan.best_of for p in plan.noise]
    if plan.args:
        out += [("args", p) for p in plan.noise]
    out += [(f"rain:{v}@{b}", p) for v in plan.rain for b in plan.budgets for p in plan.noise]
    return out


def judge_for(rule: Rule, p: float, seed: int) -> Any:
    """The exact rule (p = 1) or its noisy copy."""
    return rule if p >= 1.0 else NoisyJudge(rule, p, seed=seed)


def answer_key(item_id: str, method: str, noise: float | None) -> tuple[str, str, str]:
    """What identifies one answer of a frontier results file: (prompt, method, accuracy)."""
    return item_id, method, "-" if noise is None else f"{noise:g}"


def _fingerprint(plan: FrontierPlan, model: str, method: str) -> str:
    """What determines a method's answers besides the prompt: a resumed run must match."""
    s = plan.method_settings()
    parts: list[Any] = [model, plan.task.describe(), plan.seed, s.temperature, s.top_k]
    peer = parse_peer(method)
    if peer is not None:
        parts[3] = peer[2]  # the temperature these answers are sampled at
        if peer[0] == "best-until":
            parts += ["until", UNTIL_ACCEPT, UNTIL_ROUND]
    if method == "args":
        parts += [s.args_top_k, s.args_weight]
    if method.startswith("rain:"):
        variant, _, budget = method[5:].partition("@")
        parts += [_config_fingerprint(plan.rain_config(variant, int(budget))), s.embedder_name]
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


NEWER_CONFIG_FIELDS = ("simulation_top_k", "answer_nll_margin")
"""RainConfig fields added after frontier files were first written: left out of a
fingerprint while unset (None), so a file of answers they cannot change still resumes."""


def _config_fingerprint(config: RainConfig) -> dict[str, Any]:
    """The config's fields as the fingerprint hashes them (``NEWER_CONFIG_FIELDS``)."""
    return {k: v for k, v in config.to_dict().items()
            if not (k in NEWER_CONFIG_FIELDS and v is None)}


def _answered(done: Mapping[tuple[str, str, str], Mapping[str, Any]], item_id: str,
              method: str, noise: float | None) -> bool:
    """Whether ``done`` holds this answer without an error (a resumed run keeps it)."""
    rec = done.get(answer_key(item_id, method, noise))
    return rec is not None and not rec.get("error")


def resumable_records(out: str | Path, plan: FrontierPlan,
                      model: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The answers of ``out`` by ``model`` that a run of ``plan`` keeps, by
    :func:`answer_key`; ConfigError naming ``out`` when one of the methods the plan
    records was answered there with other settings (methods it does not record may
    differ: a run may add prompts to an older file's baselines). It changes nothing but a
    last line cut short by an interruption: the CLI calls it before its probe, so a wrong
    file fails before any model work."""
    path = Path(out).expanduser()
    done = {answer_key(r["item_id"], r["method"], r.get("noise")): r
            for r in read_records(path, repair=True) if r.get("model") == model}
    planned = {label for label, _ in method_labels(plan)}
    for rec in done.values():
        if rec["method"] not in planned:
            continue
        want = _fingerprint(plan, model, rec["method"])
        if not rec.get("error") and rec.get("fingerprint") not in (None, want):
            raise ConfigError("out", f"{path} holds {rec['method']!r} answers made with other "
                                     "settings; resume with the same options or use a new file")
        margin = rec.get("fluency_margin")
        if not rec.get("error") and margin is not None and margin != plan.fluency_margin:
            raise ConfigError("fluency_margin", f"{path} holds answers judged fluent within "
                                                f"{margin:g} nats of greedy; resume with "
                                                f"--fluency-margin {margin:g} or use a new file")
    return done


def run_frontier(backend: Any, items: Sequence[Item], plan: FrontierPlan, out: str | Path, *,
                 data_dir: str | Path | None = None,
                 on_record: Callable[[Mapping[str, Any]], None] | None = None,
                 on_prompt: Callable[[int, int], None] | None = None) -> FrontierSummary:
    """Answer every prompt with every planned method, appending to ``out`` (resumable).

    ``on_record`` is called with each record written, ``on_prompt`` with (prompts left,
    records this prompt wrote) after each prompt (progress displays)."""
    path = Path(out).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model_name(backend)
    done = resumable_records(path, plan, model)
    summary = FrontierSummary()
    with open(path, "a", encoding="utf-8") as fh:
        def write(rec: dict[str, Any]) -> None:
            rec["fingerprint"] = _fingerprint(plan, model, rec["method"])
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
            fh.flush()
            done[answer_key(rec["item_id"], rec["method"], rec.get("noise"))] = rec
            summary.written += 1
            if rec.get("error"):
                summary.failed += 1
                if len(summary.errors) < 5:
                    summary.errors.append(f"{rec['item_id']} {rec['method']}: {rec['error']}")
            if on_record is not None:
                on_record(rec)

        for index, item in enumerate(items):
            before = summary.written
            _run_item(backend, item, plan, model, done, write, summary, data_dir)
            if on_prompt is not None:
                on_prompt(len(items) - index - 1, summary.written - before)
    return summary


def _run_item(backend: Any, item: Item, plan: FrontierPlan, model: str,
              done: dict[tuple, dict[str, Any]], write: Callable[[dict[str, Any]], None],
              summary: FrontierSummary, data_dir: str | Path | None) -> None:
    seed = item_seed(plan.seed, item.id)
    base = {"task": plan.task.name, "item_id": item.id, "dataset": item.dataset,
            "prompt": item.prompt, "model": model, "seed": seed}
    if plan.task.split is not None:
        base["split"] = plan.task.split
    messages = normalize_messages(item.prompt, system=plan.settings.system)
    scorer = AnswerScorer(backend, backend.render_prompt(messages), plan.fluency_margin,
                          in_words=plan.task.in_words)
    greedy = done.get(answer_key(item.id, "greedy", None))
    if greedy is None or greedy.get("error"):
        greedy = _answer(backend, item, "greedy", None, plan, seed, base, None, None, scorer,
                         data_dir)
        write(greedy)
    else:
        summary.skipped += 1
    if greedy.get("error"):
        return
    scorer.set_greedy(greedy)
    rule = plan.task.rule_for(greedy["text"], data_dir=data_dir)
    if plan.task.greedy_must_fail and not rule.violated(greedy["text"]):
        return
    drawn: set[object] = set()  # best-of-N labels (every p) and best-until (temperature, p) done
    for method, p in method_labels(plan)[1:]:
        if method in drawn:
            continue
        if _answered(done, item.id, method, p):
            summary.skipped += 1
            continue
        peer = parse_peer(method)
        if peer is not None and peer[0] == "best-of":
            drawn.add(method)
            for rec in _best_of(backend, item, method, plan, seed, base, rule, greedy, done,
                                scorer):
                write(rec)
            continue
        if peer is not None:  # best-until: every N at once
            if (peer[2], p) not in drawn:
                drawn.add((peer[2], p))
                for rec in _best_until(backend, item, plan, seed, base, rule, greedy, done,
                                       scorer, peer[2], p):
                    write(rec)
            continue
        write(_answer(backend, item, method, p, plan, seed, base, rule, greedy, scorer,
                      data_dir))


def _record(base: Mapping[str, Any], method: str, p: float | None, out: MethodOutcome,
            rule: Rule | None, greedy: Mapping[str, Any] | None,
            scorer: AnswerScorer | None = None, **extra: Any) -> dict[str, Any]:
    """The record of one answer; with ``scorer`` its fluency fields (scored now, after
    the method's seconds and tokens were measured; ``greedy`` None: the answer is
    greedy's, the reference)."""
    text = out.text
    rec = dict(base)
    rec.update(method=method, family=_family(method), budget=_budget(method), noise=p,
               text=text, answer_tokens=out.answer_tokens, finish_reason=out.finish_reason,
               tokens_encoded=out.tokens_encoded, judged_texts=out.judged_texts,
               seconds=out.seconds, details=dict(out.details),
               budget_exhausted=bool(out.details.get("budget_exhausted", False)),
               versions=versions(), time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
               error=None)
    if rule is not None:
        rec["failed"] = rule.violated(text)
        rec["rule"] = {"name": rule.name, "words": list(getattr(rule, "words", ()))}
    if greedy is not None:
        rec["greedy_tokens"] = greedy["tokens_encoded"]
        rec["greedy_failed"] = greedy.get("failed")
        rec["same_as_greedy"] = text == greedy["text"]
    if scorer is not None:
        rec.update(scorer.fields(out.answer_ids, text, greedy=greedy is None))
        rec["kept_and_fluent"] = kept_and_fluent(rec.get("failed"), rec["fluent"])
    rec.update(extra)
    return rec


def _answer(backend: Any, item: Item, method: str, p: float | None, plan: FrontierPlan,
            seed: int, base: Mapping[str, Any], rule: Rule | None,
            greedy: Mapping[str, Any] | None, scorer: AnswerScorer | None = None,
            data_dir: str | Path | None = None) -> dict[str, Any]:
    """One method's answer under judge accuracy ``p``, as a record (or its error)."""
    try:
        if method == "greedy":
            out = run_method("vanilla", backend, item.prompt, plan.method_settings(), seed=seed)
            rule = plan.task.rule_for(out.text, data_dir=data_dir)
            return _record(base, method, None, out, rule, None, scorer,
                           greedy_tokens=out.tokens_encoded)
        judge = judge_for(rule, p, seed) if p is not None else None
        if method == "sampled":
            out = run_method("vanilla-sampled", backend, item.prompt, plan.method_settings(), seed=seed)
        elif method == "args":
            out = run_method("args", backend, item.prompt, plan.method_settings(), seed=seed,
                             evaluator=judge)
        else:
            variant, _, budget = method[5:].partition("@")
            settings = plan.method_settings(plan.rain_config(variant, int(budget)))
            out = run_method("rain", backend, item.prompt, settings, seed=seed, evaluator=judge)
        return _record(base, method, p, out, rule, greedy, scorer)
    except Exception as exc:  # one failing answer must not end the run: record it
        return _error(base, method, p, exc)


def _best_of(backend: Any, item: Item, method: str, plan: FrontierPlan, seed: int,
             base: Mapping[str, Any], rule: Rule, greedy: Mapping[str, Any],
             done: Mapping[tuple, Any],
             scorer: AnswerScorer | None = None) -> list[dict[str, Any]]:
    """best-of-N under every p: the N answers are drawn once and judged under each p."""
    _, n, temperature = parse_peer(method)  # type: ignore[misc]
    todo = [p for p in plan.noise if not _answered(done, item.id, method, p)]
    try:
        drawn = draw_answers(backend, item.prompt, plan.peer_settings(temperature), seed=seed, n=n)
    except Exception as exc:  # recorded per p
        return [_error(base, method, p, exc) for p in todo]
    texts = drawn.details["texts"]
    out = []
    for p in todo:
        try:
            judge = judge_for(rule, p, seed)
            best, scores = pick_best(item.prompt, texts, judge, system=plan.settings.system)
            chosen = dataclasses.replace(drawn, text=texts[best],
                                         answer_tokens=drawn.details["answer_tokens"][best],
                                         answer_ids=drawn.details["answer_ids"][best],
                                         finish_reason=drawn.details["finish_reasons"][best],
                                         details={"n": n, "chosen": best, "scores": scores},
                                         judged_texts=n)
            out.append(_record(base, method, p, chosen, rule, greedy, scorer))
        except Exception as exc:  # scoring included: recorded for this p
            out.append(_error(base, method, p, exc))
    return out


def _best_until(backend: Any, item: Item, plan: FrontierPlan, seed: int,
                base: Mapping[str, Any], rule: Rule, greedy: Mapping[str, Any],
                done: Mapping[tuple, Any], scorer: AnswerScorer | None, temperature: float,
                p: float) -> list[dict[str, Any]]:
    """best-until-N for every N of the plan at one temperature and judge accuracy: one
    run, one answer per round, up to the largest N. A smaller N's answer is the one its
    own run would return (the same seeds, and the same judge calls in the same order) and
    its cost what that run would spend: the tokens encoded and seconds of its rounds."""
    todo = [(n, peer_label("best-until", n, temperature)) for n in plan.best_of]
    todo = [(n, label) for n, label in todo if not _answered(done, item.id, label, p)]
    try:
        run = best_until(backend, item.prompt, max(plan.best_of), plan.peer_settings(temperature),
                         seed, judge_for(rule, p, seed))
    except Exception as exc:  # recorded per N
        return [_error(base, label, p, exc) for _, label in todo]
    out = []
    for n, label in todo:
        try:
            out.append(_record(base, label, p, until_outcome(run, n), rule, greedy, scorer))
        except Exception as exc:  # scoring included: recorded for this N
            out.append(_error(base, label, p, exc))
    return out


def until_outcome(run: MethodOutcome, n: int) -> MethodOutcome:
    """What best-until-``n`` returns, from a best-until run of at least ``n`` answers."""
    d = run.details
    scores = d["scores"]
    accepted = next((i for i, v in enumerate(scores) if v >= UNTIL_ACCEPT), None)
    if accepted is not None and accepted < n:
        drawn, chosen, stopped = accepted + 1, accepted, "accepted"
    else:
        drawn = min(n, len(scores))
        chosen, stopped = first_best(scores[:drawn]), "max_n"
    details = {"n": drawn, "scores": scores[:drawn], "chosen": chosen, "stopped": stopped,
               "budget_exhausted": stopped != "accepted", "drawn_with_n": len(scores)}
    ids = d["answer_ids"][chosen]
    return dataclasses.replace(run, text=d["texts"][chosen], answer_ids=tuple(ids),
                               answer_tokens=len(ids), finish_reason=d["finish_reasons"][chosen],
                               tokens_encoded=d["round_tokens"][drawn - 1],
                               seconds=d["round_seconds"][drawn - 1], judged_texts=drawn,
                               judge_value=scores[chosen], details=details)


def _error(base: Mapping[str, Any], method: str, p: float | None, exc: BaseException) -> dict[str, Any]:
    rec = dict(base)
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
    rec.update(method=method, family=_family(method), budget=_budget(method), noise=p,
               error=f"{type(exc).__name__}: {exc}", traceback="".join(tb)[-2000:],
               time=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return rec


def _family(method: str) -> str:
    """"best-of-8" -> "best-of-n"; "best-until-8@t0.7" -> "best-until-n@t0.7";
    "rain:default@16" -> "rain:default"; else the method."""
    peer = parse_peer(method)
    if peer is not None:
        return f"{peer[0]}-n{label_suffix(peer[2])}"
    return method.split("@", 1)[0]


def _budget(method: str) -> int | None:
    """N of best-of-N and best-until-N, B of rain:VARIANT@B, None otherwise."""
    peer = parse_peer(method)
    if peer is not None:
        return peer[1]
    if "@" in method:
        return int(method.rsplit("@", 1)[1])
    return None
