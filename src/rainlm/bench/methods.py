"""The answering methods the benchmark compares, all on the same backend and judge.

- ``vanilla``: plain greedy decoding (:func:`rainlm.request.answer`, method "greedy").
- ``vanilla-sampled``: one answer sampled with the seeded sampling loop below.
- ``best-of-n`` (or ``best-of-8``, …): N sampled answers, the one the judge scores
  best is kept (ties: the first). With ``match_compute`` N is chosen as the run goes
  so that the tokens the model encodes (sampling and judging) match what RAIN spent
  on the same item.
- ``args``: reward-guided decoding in the style of ARGS (Khanov et al., 2024, "ARGS-greedy"):
  at each step the top-k next tokens are scored by log-probability plus w × the judge's
  value of the extended answer, and the best is taken (:mod:`rainlm.bench.args`).
- ``rain``: :func:`rainlm.request.answer` (RAIN) with the run's RainConfig (any preset or
  config).

Each returns a :class:`MethodOutcome`: the answer, seconds, tokens encoded (the
backend's prefill + decode counters over the call, judge calls included) and the texts
the judge was asked about.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rainlm.backends.base import clear_prefix_cache, stop_strings_of
from rainlm.backends.decoding import SEED_RANGE, DecodeRequest, decodes_natively
from rainlm.config import RainConfig
from rainlm.core.stopping import finish_reason, truncate_at_stop
from rainlm.errors import BackendError, ConfigError
from rainlm.judge.base import EvalRequest, Evaluator
from rainlm.request import GenerationParams, answer

__all__ = ["METHOD_HELP", "MethodOutcome", "MethodSettings", "draw_answers", "first_best",
           "measured", "parse_method", "pick_best", "run_method", "sample_answers", "sample_rngs",
           "tokens_encoded"]

METHOD_HELP = "vanilla, vanilla-sampled, best-of-n (or best-of-N, e.g. best-of-8), args, rain"
_BEST_OF = re.compile(r"best-of-(n|[1-9][0-9]*)")


@dataclass(frozen=True)
class MethodSettings:
    """How every method answers (shared by all items of a run)."""

    params: GenerationParams = field(default_factory=GenerationParams)
    """What every answer is asked to be (``rainlm.request``): RAIN's search config (its
    ``time_budget_s`` is RAIN's budget per answer; its stop strings apply to every
    method), the answer length, the system prompt and RAIN's sentence encoder by name.
    Each answer sets its own method and seed."""
    encoder: Any = None
    """A loaded sentence encoder for RAIN, in place of ``params.embedder`` (None: RAIN
    loads the one ``params.embedder`` names)."""
    best_of_n: int = 4
    """N of ``best-of-n`` (and the first round's size when matching compute)."""
    match_compute: bool = False
    """Choose best-of-n's N so its tokens encoded match RAIN's on the same item."""
    max_n: int = 64
    """Upper bound on N when matching compute."""
    temperature: float = 1.0
    """Sampling temperature of vanilla-sampled and best-of-n."""
    top_k: int | None = 50
    """Sample from the k most probable tokens (None: the whole vocabulary)."""
    args_top_k: int = 10
    """ARGS: next tokens scored at each step (the k most probable). ARGS paper: 10."""
    args_weight: float = 1.5
    """ARGS: w in ``log p(token) + w · value(answer + token)``. ARGS paper: 1–2."""
    cold_cache: bool = True
    """Clear the backend's prefix cache (``clear_cache()``, when it has one) before each
    answer, so no method reuses keys/values another method paid for: tokens encoded
    are then comparable across methods and independent of their order."""

    def __post_init__(self) -> None:
        if not isinstance(self.params, GenerationParams):
            raise ConfigError("params", f"must be a GenerationParams, got {self.params!r}")
        if self.params.banned_words or self.params.continuation:
            # the bench's judge is its evaluator and its prompts are questions
            raise ConfigError("params", "banned_words and continuation do not apply to the "
                                        "bench (give the judge as --judge / a task)")
        for name, lo in (("best_of_n", 1), ("max_n", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ConfigError(name, f"must be an integer >= {lo}, got {value!r}")
        if not (isinstance(self.temperature, (int, float)) and 0 < self.temperature < 100):
            raise ConfigError("temperature", f"must be in (0, 100), got {self.temperature!r}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ConfigError("top_k", f"must be an integer >= 1 or None, got {self.top_k!r}")
        if not isinstance(self.args_top_k, int) or isinstance(self.args_top_k, bool) \
                or self.args_top_k < 1:
            raise ConfigError("args_top_k", f"must be an integer >= 1, got {self.args_top_k!r}")
        if not (isinstance(self.args_weight, (int, float)) and 0 <= self.args_weight < 1e6):
            raise ConfigError("args_weight", f"must be a number in [0, 1e6), got {self.args_weight!r}")

    @property
    def config(self) -> RainConfig:
        """RAIN's search config (``params.config``)."""
        return self.params.config

    @property
    def max_new_tokens(self) -> int:
        """Answer length limit of every method, in tokens (``params.max_new_tokens``)."""
        return self.params.max_new_tokens

    @property
    def system(self) -> str | None:
        """System prompt placed before each question (``params.system``)."""
        return self.params.system

    @property
    def embedder_name(self) -> str:
        """RAIN's sentence encoder by name: the loaded one's, else ``params.embedder``."""
        if self.encoder is None:
            return self.params.embedder
        return getattr(self.encoder, "name", type(self.encoder).__name__)

    def with_params(self, **changes: Any) -> "MethodSettings":
        """A copy whose ``params`` have some fields changed (validated again)."""
        return dataclasses.replace(self, params=self.params.replace(**changes))

    def with_encoder(self, loaded: Any) -> "MethodSettings":
        """A copy using what ``Services.load_embedder`` returned: a loaded encoder, or a
        name (such as "none") that RAIN then reads as ``params.embedder``."""
        if isinstance(loaded, str):
            return self.with_params(embedder=loaded)
        return dataclasses.replace(self, encoder=loaded)

    def request(self, method: str, seed: int = 0) -> GenerationParams:
        """The parameters of a greedy or RAIN answer to messages that already hold the
        system prompt. Greedy runs with no time budget (the baseline runs to its end)."""
        params = self.params if method == "rain" else self.params.baseline()
        return params.replace(method=method, seed=seed, system=None)

    def stop_strings(self, backend: Any) -> tuple[str, ...]:
        return self.config.answers.stop_strings + stop_strings_of(backend)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (the embedder by name; the keys of files written before
        ``params`` existed, so their runs resume)."""
        return {"config": self.config.to_dict(), "max_new_tokens": self.max_new_tokens,
                "system": self.system, "time_budget_s": self.config.budgets.time_budget_s,
                "embedder": self.embedder_name,
                "best_of_n": self.best_of_n, "match_compute": self.match_compute,
                "max_n": self.max_n, "temperature": self.temperature, "top_k": self.top_k,
                "args_top_k": self.args_top_k, "args_weight": self.args_weight,
                "cold_cache": self.cold_cache}


@dataclass(frozen=True)
class MethodOutcome:
    """One method's answer to one item."""

    text: str
    """The answer text (cut at the first stop string)."""
    seconds: float
    """Wall-clock seconds of the whole method (judging included for best-of-n)."""
    tokens_encoded: int
    """Tokens the model encoded during the call: backend prefill + decode counters."""
    answer_tokens: int
    """Length of the answer, in tokens."""
    finish_reason: str
    """"eos", "length", "stop_string" or "time_budget"."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Method specifics: RAIN's searches/steps, best-of-n's N, scores and pick, ..."""
    judge_value: float | None = None
    """The judge's value of this answer when the method already computed it."""
    judged_texts: int = 0
    """Texts the method sent to the judge (its evaluator calls; cached ones not counted)."""
    answer_ids: tuple[int, ...] | None = None
    """The answer's token ids as the model produced them (no end-of-sequence; ``text``
    may stop earlier, at a stop string), to score without tokenizing the text again
    (None: the method did not keep them)."""


def parse_method(name: str) -> tuple[str, int | None]:
    """("vanilla"|"vanilla-sampled"|"best-of-n"|"args"|"rain", N or None); ConfigError otherwise."""
    if name in ("vanilla", "vanilla-sampled", "args", "rain"):
        return name, None
    m = _BEST_OF.fullmatch(name)
    if m:
        return "best-of-n", None if m.group(1) == "n" else int(m.group(1))
    raise ConfigError("methods", f"unknown method {name!r}; choose from {METHOD_HELP}")


def tokens_encoded(backend: Any) -> int:
    """Prefill + decode tokens the backend has encoded so far (0 without counters)."""
    counters = getattr(backend, "counters", None)
    if counters is None:
        return 0
    return int(getattr(counters, "prefill_tokens", 0)) + int(getattr(counters, "decode_tokens", 0))


# ------------------------------------------------------------------ sampling loop
def sample_rngs(seed: int, first: int, count: int) -> list[np.random.Generator]:
    """One generator per sampled answer, answer i seeded by (seed, i): answer i is the
    same whatever else is drawn with it, so best-of-N's answers are the first N of
    best-of-M's for M > N."""
    return [np.random.default_rng([seed, i]) for i in range(first, first + count)]


def sample_answers(backend: Any, prompt_ids: Sequence[int], n: int,
                   rng: np.random.Generator | Sequence[np.random.Generator],
                   *, max_new_tokens: int, stop_strings: Sequence[str] = (),
                   temperature: float = 1.0, top_k: int | None = None,
                   ) -> list[tuple[list[int], str]]:
    """``n`` answers sampled together: (answer ids without EOS, finish reason) each.

    Every step sends the unfinished answers to ``backend.next_logprobs`` as one batch
    and draws one token for each, in order, from ``rng`` (one generator shared by all
    answers, or one per answer: :func:`sample_rngs`) — so the same seed gives the same
    answers. A backend that decodes natively (a serving engine: ``decodes_natively``)
    samples each answer itself instead, one continuation per answer seeded from its
    generator, all in one ``decode`` call (:func:`_sample_on_engine`).
    """
    rngs = [rng] * n if isinstance(rng, np.random.Generator) else list(rng)
    if len(rngs) != n:
        raise ConfigError("rng", f"needs one generator per answer ({n}), got {len(rngs)}")
    eos = frozenset(backend.eos_token_ids)
    answers: list[list[int]] = [[] for _ in range(n)]
    reasons: list[str | None] = [None] * n
    engine = decodes_natively(backend)
    while True:
        for i in range(n):
            if reasons[i] is None:
                reasons[i] = finish_reason(
                    answers[i], eos_ids=eos, max_new_tokens=max_new_tokens,
                    stop_strings=stop_strings, detokenize=backend.detokenize)
        active = [i for i in range(n) if reasons[i] is None]
        if not active:
            break
        if engine:
            _sample_on_engine(backend, prompt_ids, answers, active, rngs, eos,
                              max_new_tokens=max_new_tokens, stop_strings=stop_strings,
                              temperature=temperature, top_k=top_k)
            continue
        dists = backend.next_logprobs([list(prompt_ids) + answers[i] for i in active],
                                      top_k=top_k)
        for i, dist in zip(active, dists, strict=True):
            token, _ = dist.sample(rngs[i], top_k=top_k, temperature=temperature)
            answers[i].append(token)
    return [([t for t in a if t not in eos], str(r)) for a, r in zip(answers, reasons, strict=True)]


def _sample_on_engine(backend: Any, prompt_ids: Sequence[int], answers: list[list[int]],
                      active: Sequence[int], rngs: Sequence[np.random.Generator],
                      eos: frozenset[int], *, max_new_tokens: int, stop_strings: Sequence[str],
                      temperature: float, top_k: int | None) -> None:
    """One round of ``sample_answers`` on an engine: each active answer is continued by
    one seeded ``DecodeRequest`` (its seed drawn from its own generator), in one
    ``decode`` call; the tokens are kept up to the finish rule (the caller asks again
    for an answer the engine stopped before it ended)."""
    requests = [DecodeRequest(list(prompt_ids) + answers[i],
                              max_tokens=max_new_tokens - len(answers[i]), temperature=temperature, top_k=top_k, stop=tuple(stop_strings),
                              stop_token_ids=tuple(sorted(eos)),
                              seed=int(rngs[i].integers(SEED_RANGE)))
                for i in active]
    for i, out in zip(active, backend.decode(requests), strict=True):
        if not out.tokens:
            raise BackendError("The engine continued a sampled answer by no tokens.")
        for token in out.tokens:
            answers[i].append(int(token))
            if finish_reason(answers[i], eos_ids=eos, max_new_tokens=max_new_tokens,
                             stop_strings=stop_strings, detokenize=backend.detokenize):
                break


def _texts(backend: Any, samples: list[tuple[list[int], str]], stops: Sequence[str]) -> list[str]:
    return [truncate_at_stop(backend.detokenize(ids), stops) for ids, _ in samples]


# ------------------------------------------------------------------ methods
def _vanilla(backend: Any, messages: Sequence[Mapping[str, str]],
             s: MethodSettings) -> MethodOutcome:
    res = answer(backend, list(messages), s.request("greedy"), score=False).result
    return MethodOutcome(res.text, 0.0, 0, len(res.token_ids), res.finish_reason,
                         answer_ids=tuple(res.token_ids))


def _vanilla_sampled(backend: Any, messages: Sequence[Mapping[str, str]], s: MethodSettings,
                     seed: int) -> MethodOutcome:
    stops = s.stop_strings(backend)
    samples = sample_answers(backend, backend.render_prompt(messages), 1,
                             sample_rngs(seed, 0, 1), max_new_tokens=s.max_new_tokens,
                             stop_strings=stops, temperature=s.temperature, top_k=s.top_k)
    return MethodOutcome(_texts(backend, samples, stops)[0], 0.0, 0, len(samples[0][0]),
                         samples[0][1], answer_ids=tuple(samples[0][0]))


def _best_of_n(backend: Any, messages: Sequence[Mapping[str, str]], s: MethodSettings,
               seed: int, evaluator: Evaluator, n: int | None,
               token_budget: int | None) -> MethodOutcome:
    """Sample and judge in rounds; without a budget one round of N answers."""
    stops = s.stop_strings(backend)
    prompt_ids = backend.render_prompt(messages)
    start = tokens_encoded(backend)
    samples: list[tuple[list[int], str]] = []
    texts: list[str] = []
    scores: list[float] = []
    # With a budget, one answer first measures the cost per answer (judging included).
    size = (n or s.best_of_n) if token_budget is None else 1
    while size > 0:
        new = sample_answers(backend, prompt_ids, size, sample_rngs(seed, len(samples), size),
                             max_new_tokens=s.max_new_tokens, stop_strings=stops,
                             temperature=s.temperature, top_k=s.top_k)
        new_texts = _texts(backend, new, stops)
        scores += evaluator.evaluate([EvalRequest(tuple(messages), t) for t in new_texts])
        samples, texts = samples + new, texts + new_texts
        size = 0 if token_budget is None else _next_round(
            tokens_encoded(backend) - start, len(samples), token_budget, s.max_n)
    best = first_best(scores)
    details = {"n": len(samples), "scores": [float(x) for x in scores], "chosen": best,
               "token_budget": token_budget}
    return MethodOutcome(texts[best], 0.0, 0, len(samples[best][0]), samples[best][1],
                         details, judge_value=float(scores[best]), judged_texts=len(texts),
                         answer_ids=tuple(samples[best][0]))


def first_best(scores: Sequence[float]) -> int:
    """Index of the highest score (the first of the best on ties)."""
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))


def pick_best(prompt: str, texts: Sequence[str], evaluator: Evaluator, *,
              system: str | None = None) -> tuple[int, list[float]]:
    """The judge's favourite of ``texts`` (first of the best on ties) and every score."""
    from rainlm.messages import normalize_messages

    messages = tuple(normalize_messages(prompt, system=system))
    scores = [float(v) for v in evaluator.evaluate([EvalRequest(messages, t) for t in texts])]
    return first_best(scores), scores


def draw_answers(backend: Any, prompt: str, settings: MethodSettings, *, seed: int,
                 n: int) -> MethodOutcome:
    """best-of-N's N sampled answers, not judged (to judge them several ways).

    Answer i is seeded by (seed, i), as in best-of-n. ``details`` holds ``texts``,
    ``answer_tokens``, ``answer_ids`` and ``finish_reasons``; ``text`` is the first
    answer. Tokens encoded and seconds are the sampling's, measured as
    :func:`run_method` does.
    """
    from rainlm.messages import normalize_messages

    messages = normalize_messages(prompt, system=settings.system)

    def answer() -> MethodOutcome:
        stops = settings.stop_strings(backend)
        samples = sample_answers(backend, backend.render_prompt(messages), n,
                                 sample_rngs(seed, 0, n), max_new_tokens=settings.max_new_tokens,
                                 stop_strings=stops, temperature=settings.temperature,
                                 top_k=settings.top_k)
        texts = _texts(backend, samples, stops)
        details = {"texts": texts, "answer_tokens": [len(ids) for ids, _ in samples],
                   "answer_ids": [tuple(ids) for ids, _ in samples],
                   "finish_reasons": [r for _, r in samples]}
        return MethodOutcome(texts[0], 0.0, 0, len(samples[0][0]), samples[0][1], details,
                             answer_ids=tuple(samples[0][0]))

    return measured(backend, settings, answer)


def _next_round(spent: int, done: int, budget: int, max_n: int) -> int:
    """How many more answers fit the budget at the cost per answer measured so far."""
    remaining = budget - spent
    per_answer = spent / done if done else math.inf
    if done >= max_n or per_answer <= 0 or remaining < per_answer / 2:
        return 0
    return max(1, min(max_n - done, int(round(remaining / per_answer))))


def _rain(backend: Any, messages: Sequence[Mapping[str, str]], s: MethodSettings, seed: int,
          evaluator: Evaluator | None) -> MethodOutcome:
    res = answer(backend, list(messages), s.request("rain", seed), evaluator=evaluator,
                 embedder=s.encoder, score=False).result
    keys = ("searches", "steps", "evaluations", "evaluation_cache_hits", "model_calls",
            "budget_exhausted", "greedy_tail_tokens", "greedy_tail_cut", "simulations_kept",
            "forced_steps", "simulated_answer_tokens", "repairs", "repair_judgements",
            "check_judgements", "answer_vetoes", "accepted", "answer_value",
            "disfluent_answers", "greedy_reference_nll", "fluency_scored_tokens")
    details = {k: res.stats[k] for k in keys if k in res.stats}
    judged = res.stats["evaluations"] - res.stats["evaluation_cache_hits"]
    return MethodOutcome(res.text, 0.0, 0, len(res.token_ids), res.finish_reason, details,
                         judged_texts=judged, answer_ids=tuple(res.token_ids))


def _args(backend: Any, messages: Sequence[Mapping[str, str]], s: MethodSettings,
          evaluator: Evaluator) -> MethodOutcome:
    from rainlm.bench.args import args_decode

    out = args_decode(backend, messages, evaluator, top_k=s.args_top_k, weight=s.args_weight,
                      max_new_tokens=s.max_new_tokens, stop_strings=s.stop_strings(backend))
    details = {"top_k": s.args_top_k, "weight": s.args_weight, "steps": out.steps}
    return MethodOutcome(out.text, 0.0, 0, len(out.token_ids), out.finish_reason, details,
                         judged_texts=out.judged_texts, answer_ids=tuple(out.token_ids))


def run_method(name: str, backend: Any, prompt: str, settings: MethodSettings, *, seed: int,
               evaluator: Evaluator | None = None,
               rain_tokens: int | None = None) -> MethodOutcome:
    """Answer ``prompt`` with method ``name``; seconds and tokens encoded are measured here.

    ``evaluator``: the judge of best-of-n and RAIN (None: RAIN's self-evaluation; best-of-n
    needs one). ``rain_tokens``: RAIN's tokens encoded on this item, the budget of
    best-of-n with ``settings.match_compute``.
    """
    from rainlm.messages import normalize_messages

    kind, n = parse_method(name)
    messages = normalize_messages(prompt, system=settings.system)
    budget = None
    if kind in ("best-of-n", "args") and evaluator is None:
        raise ConfigError("evaluator", f"{kind} needs a judge to score answers")
    if kind == "best-of-n":
        if settings.match_compute and n is None:
            if rain_tokens is None:
                raise ConfigError("match_compute", "needs RAIN's cost on the same item: "
                                                   "list rain in the methods as well")
            budget = int(rain_tokens)
    answerers: dict[str, Callable[[], MethodOutcome]] = {
        "vanilla": lambda: _vanilla(backend, messages, settings),
        "vanilla-sampled": lambda: _vanilla_sampled(backend, messages, settings, seed),
        "best-of-n": lambda: _best_of_n(backend, messages, settings, seed, evaluator, n, budget),
        "args": lambda: _args(backend, messages, settings, evaluator),
        "rain": lambda: _rain(backend, messages, settings, seed, evaluator),
    }
    return measured(backend, settings, answerers[kind])


def measured(backend: Any, settings: MethodSettings,
              answer: Callable[[], MethodOutcome]) -> MethodOutcome:
    """``answer()`` with its seconds and tokens encoded filled in, from a cold prefix cache
    when ``settings.cold_cache``."""
    if settings.cold_cache:
        clear_prefix_cache(backend)
    before, start = tokens_encoded(backend), time.perf_counter()
    out = answer()
    seconds = time.perf_counter() - start
    return dataclasses.replace(out, seconds=round(seconds, 4),
                               tokens_encoded=tokens_encoded(backend) - before)
