"""The request layer: what one answer is asked to be, declared once, and one function
that answers it.

``GenerationParams`` holds the model-independent generation parameters (like vLLM's
``SamplingParams``): the method, the search config (its budgets and fallback
included), the seed, the length limit, the prompt's framing and the judge and encoder
choices, each with its docstring. ``answer()`` answers it on a loaded backend and
returns an ``Answer``: the result, its final self-evaluation (``score_answer``: one
judgement gives the continuous score and the paper's vote) and a JSON-ready form.
``rain generate``/``chat``, ``rain serve`` and ``rain bench`` all call it, and their
options and settings take their choices and defaults from here.

The import graph: cli/serve/bench → this module → api/core ← backends/judge/similarity
(and the encoder names of ``similarity.loading``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rainlm.config import PRESETS, BudgetFallback, RainConfig, Scoring
from rainlm.errors import ConfigError
from rainlm.fluency import TOP_K as FLUENCY_TOP_K, Fluency, answer_nll
from rainlm.similarity.loading import EMBEDDERS as LOADABLE_EMBEDDERS

if TYPE_CHECKING:  # (the result module imports the search's tree: not needed to declare)
    from rainlm.policy.model import Policy, PolicyCheck
    from rainlm.result import GenerationResult

__all__ = ["Answer", "BUDGET_FALLBACKS", "DEFAULT_MAX_NEW_TOKENS", "DEFAULT_PRESET", "DEVICES",
           "EMBEDDERS", "FinalJudge", "GenerationParams", "METHODS", "SCORINGS", "answer",
           "field_default", "measure_fluency", "score_answer"]

DEVICES = ("auto", "cpu", "cuda")
"""Where a model (and sentence encoder) runs: "auto" picks CUDA when available."""
EMBEDDERS: tuple[str, ...] = (*LOADABLE_EMBEDDERS, "none")
"""Sentence encoders by name: "auto" (MiniLM when installed, else hashing), "minilm"
(all-MiniLM-L6-v2), "hashing", or "none" (no similarity update, no dynamic node
addition)."""
METHODS = ("rain", "greedy")
"""How an answer is made: the RAIN search, or plain greedy decoding (the baseline)."""
SCORINGS: tuple[str, ...] = typing.get_args(Scoring)
"""How the self-evaluation turns the judge's answer into a value (``RainConfig.judging.scoring``;
the judge reads the same Literal)."""
BUDGET_FALLBACKS: tuple[str, ...] = typing.get_args(BudgetFallback)
"""What happens when a budget runs out (``RainConfig.budgets.budget_fallback``)."""
DEFAULT_PRESET = "harmless"
"""The search of a request that names no preset."""
DEFAULT_MAX_NEW_TOKENS = 128
"""Answer length limit of a request that sets none, in tokens."""


def field_default(cls: type, name: str) -> Any:
    """The declared default of dataclass ``cls``'s field ``name`` (options and settings
    take their defaults from the one declaration)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{name} has no plain default")
            return f.default
    raise TypeError(f"{cls.__name__} has no field {name!r}")


@dataclass(frozen=True)
class GenerationParams:
    """Everything one answer is asked to be, apart from the model and the prompt."""

    method: str = "rain"
    """"rain" (the search) or "greedy" (plain decoding: only the config's stop strings
    and time budget apply)."""
    config: RainConfig = field(default_factory=lambda: RainConfig.preset(DEFAULT_PRESET))
    """The search: every knob, its budgets (``time_budget_s``, ``max_total_searches``,
    ...), what happens when they run out (``budget_fallback``), the rubric of the
    self-evaluation and the stop strings."""
    seed: int = 0
    """Random seed of the search; the same seed and inputs give the same answer."""
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    """Answer length limit, in tokens."""
    system: str | None = None
    """System prompt placed before the messages (None: none)."""
    continuation: bool = False
    """Continue a text prompt as raw text, with no chat template (``/v1/completions``)."""
    banned_words: tuple[str, ...] = ()
    """A policy rule as the search's judge: the answer must not contain these words
    (whole words, any case). Empty: the judge is the model's self-evaluation with the
    config's rubric (or an evaluator given to ``answer()``)."""
    embedder: str = "auto"
    """Sentence encoder of the similarity update and dynamic node addition, by name
    (``EMBEDDERS``); an encoder object given to ``answer()`` takes its place."""
    policy: Policy | None = None
    """A policy file's policy (``rainlm.policy``) as the search's judge (its rules, the
    model's own judgement with its rubric, or both, as it says), and each answer checked
    against its rules (``Answer.policy_check``). Not with ``banned_words``. None: no
    policy."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError("method", f"must be one of {list(METHODS)}, got {self.method!r}")
        if not isinstance(self.config, RainConfig):
            raise ConfigError("config", f"must be a RainConfig, got {type(self.config).__name__}")
        for name, lo in (("seed", 0), ("max_new_tokens", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ConfigError(name, f"must be an integer >= {lo}, got {value!r}")
        if self.system is not None and not isinstance(self.system, str):
            raise ConfigError("system", f"must be a text or None, got {self.system!r}")
        if not isinstance(self.banned_words, tuple) or not all(
                isinstance(w, str) and w.strip() for w in self.banned_words):
            raise ConfigError("banned_words", f"must be a tuple of words, got {self.banned_words!r}")
        if self.embedder not in EMBEDDERS:
            raise ConfigError("embedder", f"must be one of {list(EMBEDDERS)}, got {self.embedder!r}")
        if self.policy is not None:
            _check_policy(self.policy, self.banned_words)

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, *, scoring: str | None = None,
                    rubric: str | None = None, max_searches_per_step: int | None = None,
                    time_budget_s: float | None = None, budget_fallback: str | None = None,
                    parallel: int | None = None, answer_nll_margin: float | None = None,
                    **fields: Any) -> "GenerationParams":
        """A preset with the command line's search overrides (None: the preset's), and
        the other fields of this class as keywords. ``parallel`` > 1 turns on the
        parallel search with that many leaves per round; ``answer_nll_margin`` turns on
        the fluency floor."""
        overrides: dict[str, Any] = {k: v for k, v in (
            ("scoring", scoring), ("rubric", rubric),
            ("max_searches_per_step", max_searches_per_step),
            ("time_budget_s", time_budget_s), ("budget_fallback", budget_fallback),
            ("answer_nll_margin", answer_nll_margin))
            if v is not None}
        if parallel is not None and parallel > 1:
            overrides.update(search_mode="parallel", parallel_leaves=parallel)
        return cls(config=RainConfig.preset(preset, **overrides), **fields)

    def replace(self, **changes: Any) -> "GenerationParams":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def baseline(self) -> "GenerationParams":
        """The greedy baseline of these parameters: plain decoding with no time budget
        (the baseline runs to its end)."""
        return self.replace(method="greedy", config=self.config.replace(time_budget_s=None))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (the config as a dict; with a policy, its summary)."""
        out = dataclasses.asdict(self.replace(policy=None) if self.policy else self)
        out["config"] = self.config.to_dict()  # flat, as the trace stores it
        out["banned_words"] = list(self.banned_words)
        del out["policy"]
        if self.policy is not None:
            out["policy"] = self.policy.summary()
        return out


def _check_policy(policy: Any, banned_words: tuple[str, ...]) -> None:
    from rainlm.policy.model import Policy

    if not isinstance(policy, Policy):
        raise ConfigError("policy", f"must be a rainlm.policy.Policy or None, got "
                                    f"{type(policy).__name__}")
    if banned_words:
        raise ConfigError("policy", "cannot be combined with banned_words: put the words in "
                                    "the policy's banned_terms")


@dataclass(frozen=True)
class FinalJudge:
    """How a final answer is self-evaluated: the rubric and the option orders."""

    rubric: str
    """A built-in rubric name or a rubric TOML path."""
    judge_orders: str
    """"both" option orders (the paper's) or "single"."""

    @classmethod
    def of(cls, config: RainConfig | str) -> "FinalJudge":
        """The judge of a config, or of a preset by name."""
        cfg = PRESETS[config] if isinstance(config, str) else config
        return cls(cfg.judging.rubric, cfg.judging.judge_orders)


@dataclass(frozen=True)
class Answer:
    """One answer with its time, its final self-evaluation and its rule check."""

    result: GenerationResult
    """The answer: text, tokens, finish reason, stats, tree, ..."""
    seconds: float
    """Wall-clock seconds of the decoding (scoring excluded), as measured here."""
    score: float | None = None
    """Self-evaluation of the final answer, scoring "continuous": in [-1, 1] (None: not
    scored)."""
    paper_vote: float | None = None
    """The same judgement as the paper's vote: in {-1, 0, 1} (two orders)."""
    judge: FinalJudge | None = None
    """The rubric and orders the score used (None: not scored)."""
    score_s: float = 0.0
    """Seconds the final self-evaluation took."""
    banned_found: tuple[str, ...] | None = None
    """With banned words: those the answer holds, each once (empty: the rule is kept)."""
    policy_check: PolicyCheck | None = None
    """With a policy: what the answer broke of its rules and, once the fail-safe judged
    it (``rainlm.policy.judging``), the policy's value (None: no policy)."""
    fluency: Fluency | None = None
    """How likely the model finds the answer: its mean NLL per token given the prompt
    (``measure_fluency``; None: not measured)."""

    @property
    def budget_limited(self) -> bool:
        """Whether a budget (or a stop) ended the answer early."""
        return bool(self.result.stats.get("budget_exhausted", False))

    def scores(self) -> dict[str, Any]:
        """The audit record's ``scores``: the final judgement and the rule check."""
        out: dict[str, Any] = {"value": self.score, "paper_vote": self.paper_vote,
                               "scoring": "continuous"}
        if self.judge is not None:
            out.update(rubric=self.judge.rubric, judge_orders=self.judge.judge_orders)
        return out | self._checks()

    def _checks(self) -> dict[str, Any]:
        """What was checked of the answer, where it was: ``banned_found``, ``policy``
        (the policy check) and ``fluency``."""
        out: dict[str, Any] = {}
        if self.banned_found is not None:
            out["banned_found"] = list(self.banned_found)
        if self.policy_check is not None:
            out["policy"] = self.policy_check.to_dict()
        if self.fluency is not None:
            out["fluency"] = self.fluency.to_dict()
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"text", "seconds", "score", "paper_vote", "stats", "finish_reason",
        "budget_limited"}`` (and ``banned_found`` with banned words, ``policy`` (the
        policy check) with a policy, ``fluency`` once measured)."""
        out = {"text": self.result.text, "seconds": round(self.seconds, 4),
               "score": self.score, "paper_vote": self.paper_vote,
               "stats": self.result.stats, "finish_reason": self.result.finish_reason,
               "budget_limited": self.budget_limited}
        return out | self._checks()


def answer(backend: Any, prompt: Any, params: GenerationParams, *, evaluator: Any = None,
           embedder: Any = None, judge: FinalJudge | None = None, score: bool = True,
           stop: threading.Event | None = None,
           on_progress: Any = None) -> Answer:
    """Answer ``prompt`` (a question or chat messages) on ``backend`` as ``params`` say.

    Args:
        evaluator: the search's judge as an object (an Evaluator or a callable); takes
            the place of ``params.policy``'s, ``params.banned_words`` and of the
            self-evaluation (the policy's rules still check the answer).
        embedder: a loaded sentence encoder (or "none"); takes the place of
            ``params.embedder`` (a server shares one across requests).
        judge: the final self-evaluation's rubric and orders (default: the config's); a
            caller that judges with its own (a server's fail-safe) passes it here or to
            ``score_answer``.
        score: self-evaluate the final answer (once: the continuous score and the
            paper's vote come from the same judgement).
        stop: an Event that ends the decoding at its next model call.
        on_progress: called with each search's progress event (RAIN only).
    """
    from rainlm.api import generate, greedy

    rule = _banned_words_rule(params.banned_words)
    cfg = params.config
    start = time.perf_counter()
    if params.method == "greedy":
        result = greedy(backend, prompt, max_new_tokens=params.max_new_tokens,
                        system=params.system, stop_strings=cfg.answers.stop_strings,
                        continuation=params.continuation, stop=stop,
                        time_budget_s=cfg.budgets.time_budget_s)
    else:
        if evaluator is None and params.policy is not None:
            evaluator = params.policy.evaluator(backend, config=cfg)
        result = generate(backend, prompt, cfg,
                          evaluator=evaluator if evaluator is not None else rule,
                          embedder=embedder if embedder is not None else params.embedder,
                          seed=params.seed, max_new_tokens=params.max_new_tokens,
                          system=params.system, continuation=params.continuation,
                          stop=stop, on_progress=on_progress)
    found = None if rule is None else tuple(dict.fromkeys(rule.found(result.text)))
    check = None if params.policy is None else params.policy.check(result.text)
    done = Answer(result, time.perf_counter() - start, banned_found=found, policy_check=check)
    if not score:
        return done
    return score_answer(backend, done, judge if judge is not None else FinalJudge.of(cfg))


def score_answer(backend: Any, done: Answer, judge: FinalJudge) -> Answer:
    """``done`` with its final self-evaluation by ``judge``, judged once: the continuous
    score and the paper's vote come from the same per-order probabilities. (``answer()``
    calls it; a caller that must keep the answer when the judgement fails calls
    ``answer(score=False)`` and then this.)"""
    from rainlm.judge.self_eval import score_final_answers

    result = done.result
    start = time.perf_counter()
    value, vote = score_final_answers(backend, judge.rubric, judge.judge_orders,
                                      result.messages, [result.text])[0]
    return dataclasses.replace(done, score=value, paper_vote=vote, judge=judge,
                               score_s=time.perf_counter() - start)


def measure_fluency(backend: Any, done: Answer) -> Answer:
    """``done`` with its fluency: the model's mean NLL per token of the answer given the
    prompt it answered (one batched pass over the answer's prefixes), its end counted
    as the search's fluency floor counts it: an answer that ended at end-of-sequence
    has that token scored too (the end token the model finds likeliest there)."""
    result = done.result
    prompt, ids = list(result.prompt_token_ids), list(result.token_ids)
    ends = sorted(getattr(backend, "eos_token_ids", ()) or ())
    if result.finish_reason == "eos" and ends:
        dist = backend.next_logprobs([prompt + ids], top_k=FLUENCY_TOP_K)[0]
        ids.append(max(ends, key=lambda t: dist.logprob_bound(t)[0]))
    return dataclasses.replace(done, fluency=answer_nll(backend, prompt, ids))


def _banned_words_rule(words: tuple[str, ...]) -> Any:
    if not words:
        return None
    from rainlm.judge.rules import BannedWordsRule

    return BannedWordsRule(words)
