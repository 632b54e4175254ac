"""Public entry points: generate() runs RAIN, generate_many() runs several RAIN searches
together (sharing forward passes), greedy() runs the baseline.

They wire a backend, an evaluator and an embedder to the search core; the CLI, the
server and the bench harness all call these.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rainlm.backends.base import Backend, model_name, stop_strings_of
from rainlm.backends.decoding import decodes_natively
from rainlm.config import RainConfig
from rainlm.core.decode import DecodeOutcome, rain_decode
from rainlm.core.greedy import greedy_continue
from rainlm.core.model_calls import DeadlineReached, ModelCalls, Steps
from rainlm.core.progress import ProgressCallback
from rainlm.core.scheduler import BatchCounts, run_alone, run_together
from rainlm.core.search import SearchContext, answer_verdict
from rainlm.core.stats import SearchStats
from rainlm.core.stopping import truncate_at_stop
from rainlm.errors import ConfigError
from rainlm.judge.base import Evaluator, as_evaluator
from rainlm.messages import PromptLike, normalize_messages
from rainlm.result import GenerationResult
from rainlm.similarity.base import Embedder

EmbedderLike = Embedder | str | None


def generate(backend: Backend, prompt: PromptLike, config: RainConfig | str | None = None, *,
             evaluator: Any = None, embedder: EmbedderLike = None,
             seed: int | np.random.Generator | None = 0, max_new_tokens: int = 128,
             time_budget_s: float | None = None, system: str | None = None,
             batched: bool = True, continuation: bool = False,
             stop: threading.Event | None = None,
             on_progress: ProgressCallback | None = None) -> GenerationResult:
    """Answer ``prompt`` with RAIN on ``backend``.

    Args:
        backend: any object with the Backend interface (``rainlm.load_backend()``).
        prompt: a question, or chat messages ``[{"role": "user", "content": ...}]``.
        config: a RainConfig or a preset name (default: the "harmless" preset).
        evaluator: an Evaluator, or a callable ``(prompt_text, response_text) -> float``
            in [-1, 1]; default: the model's self-evaluation with the config's rubric.
        embedder: an Embedder, or "minilm" / "hashing" / "auto" / "none"; default "auto"
            (all-MiniLM-L6-v2 when installed). "none" disables the similarity update
            and dynamic node addition.
        seed: an int or a numpy Generator; the same seed and inputs give the same result.
        max_new_tokens: the answer length limit, in tokens.
        time_budget_s: wall-clock budget for the whole answer (overrides the config's).
        system: a system prompt placed before the messages.
        batched: batch model calls and embeddings (same result, faster).
        continuation: continue a text prompt as raw text, with no chat template (what
            OpenAI's and vLLM's ``/v1/completions`` do); the judge sees it as the user's turn.
        stop: an Event another thread may set to end the search before its next model
            call; the answer committed so far is returned (finish_reason "stopped").
        on_progress: called with a ``rainlm.core.progress.ProgressEvent`` after every
            search pass and every commit (for live displays; must not raise).
    """
    _check_backend(backend)
    cfg = _resolve_config(config, time_budget_s)
    _check_max_new_tokens(max_new_tokens)
    search = _start_search(backend, prompt, cfg=cfg,
                           judges=lambda: (_resolve_evaluator(evaluator, backend, cfg),
                                           _resolve_embedder(embedder)), seed=seed,
                           max_new_tokens=max_new_tokens, system=system, batched=batched,
                           continuation=continuation, stop=stop, on_progress=on_progress)
    return search.result(run_alone(search.steps, backend))


def generate_many(backend: Backend, prompts: Sequence[PromptLike],
                  config: RainConfig | str | None = None, *, evaluator: Any = None,
                  embedder: EmbedderLike = None, seed: int | Sequence[int] | None = 0,
                  max_new_tokens: int = 128, time_budget_s: float | None = None,
                  system: str | None = None, continuation: bool = False,
                  stop: threading.Event | None = None,
                  batch_counts: BatchCounts | None = None) -> list[GenerationResult]:
    """Answer several prompts with RAIN at once: their searches advance together and
    every round's model calls (next-token calls of all searches and of the model's
    self-evaluation, embeddings, rule judgements) go out as one batch
    (``rainlm.core.scheduler``), so the searches share forward passes.

    Each answer is the answer :func:`generate` gives that prompt alone with the same
    arguments (the same seed gives the same tree; on a real model, up to batched
    arithmetic's last bits), unless a time budget or ``stop`` ends the searches: they
    share the clock, and a round waits for the whole batch. The arguments are
    :func:`generate`'s, except ``seed``: one for every prompt, or a list of one per
    prompt; ``evaluator`` and ``embedder`` are built once and shared by the searches.
    ``batch_counts`` (optional) receives how many searches each model call served.
    Each result's ``stats["wall_time_s"]`` and ``stats["backend"]`` are the whole run's,
    shared by the answers (``stats["answered_together"]``: how many). When a search
    fails the others still finish, then the first error is raised.
    """
    _check_backend(backend)
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise ConfigError("prompts", "must be a list of prompts (use generate() for one)")
    seeds = list(seed) if isinstance(seed, Sequence) else [seed] * len(prompts)
    if len(seeds) != len(prompts):
        raise ConfigError("seed", f"gives {len(seeds)} seeds for {len(prompts)} prompts; "
                                  "give one seed, or one per prompt")
    for i, s in enumerate(seeds):
        if s is not None and (not isinstance(s, int) or isinstance(s, bool) or s < 0):
            raise ConfigError("seed", f"seed[{i}] must be a non-negative integer or None, "
                                      f"got {s!r} (not a numpy Generator: the searches would "
                                      "all draw from it)")
    cfg = _resolve_config(config, time_budget_s)
    _check_max_new_tokens(max_new_tokens)
    for p in prompts:  # every prompt checked before the judge and the embedder are built
        normalize_messages(p, system=system)
    judges = (_resolve_evaluator(evaluator, backend, cfg), _resolve_embedder(embedder))
    start, before = time.perf_counter(), _counters(backend)
    searches = [_start_search(backend, p, cfg=cfg, judges=lambda: judges, seed=s,
                              max_new_tokens=max_new_tokens, system=system, batched=True,
                              continuation=continuation, stop=stop)
                for p, s in zip(prompts, seeds)]
    ended = run_together([s.steps for s in searches], backend, counts=batch_counts)
    failed = next((e.error for e in ended if e.error is not None), None)
    if failed is not None:
        raise failed
    shared = {"wall_time_s": round(time.perf_counter() - start, 4),
              "backend": _counter_delta(before, _counters(backend)),
              "answered_together": len(searches)}
    return [s.result(e.value, shared) for s, e in zip(searches, ended)]


@dataclass
class _Search:
    """One prompt's search, started: its steps, and what its result needs."""

    ctx: SearchContext
    steps: Steps[DecodeOutcome]
    seed: int | None
    started: float
    counters_before: dict[str, Any]

    def result(self, outcome: DecodeOutcome,
               shared: dict[str, Any] | None = None) -> GenerationResult:
        """The GenerationResult of the finished search (``shared``: stats of a run
        shared with other searches, which replace this search's own clock and counters)."""
        ctx, backend = self.ctx, self.ctx.backend
        text, ids = _final_text(backend, outcome.answer_ids, ctx.eos_ids, ctx.stop_strings)
        out_stats = ctx.stats.to_dict()
        value, accepted = answer_verdict(ctx, outcome.answer_ids)
        out_stats.update(wall_time_s=round(time.perf_counter() - self.started, 4),
                         answer_tokens=len(ids), budget_exhausted=outcome.budget_exhausted,
                         answer_value=value, accepted=accepted,
                         greedy_tail_tokens=outcome.greedy_tail_tokens,
                         evaluator=getattr(ctx.evaluator, "name", "evaluator"),
                         embedder=getattr(ctx.embedder, "name", None),
                         backend=_counter_delta(self.counters_before, _counters(backend)))
        out_stats.update(shared or {})
        return GenerationResult(
            text=text, token_ids=tuple(ids), finish_reason=outcome.finish_reason,
            stats=out_stats, method="rain", model=model_name(backend),
            prompt_token_ids=tuple(ctx.prompt_ids), tree=ctx.tree, steps=tuple(outcome.steps),
            evaluations=tuple(ctx.state.evaluations), config=ctx.config, seed=self.seed,
            messages=tuple(dict(m) for m in ctx.messages))


def _start_search(backend: Backend, prompt: PromptLike, *, cfg: RainConfig,
                  judges: Callable[[], tuple[Evaluator, Embedder | None]],
                  seed: int | np.random.Generator | None, max_new_tokens: int,
                  system: str | None, batched: bool, continuation: bool,
                  stop: threading.Event | None,
                  on_progress: ProgressCallback | None = None) -> _Search:
    """Build one prompt's search (nothing runs yet; ``max_new_tokens`` is checked).
    ``judges`` gives the evaluator and the embedder, asked for once the prompt and the
    seed are valid."""
    messages = normalize_messages(prompt, system=system)
    rng, seed_value = _resolve_rng(seed)
    started, before = time.perf_counter(), _counters(backend)
    evaluator, embedder = judges()
    ctx = SearchContext(
        backend=backend, config=cfg, evaluator=evaluator, embedder=embedder, rng=rng,
        messages=messages, prompt_ids=prompt_token_ids(backend, prompt, messages, continuation),
        max_new_tokens=max_new_tokens,
        stop_strings=cfg.answers.stop_strings + stop_strings_of(backend),
        stats=SearchStats(), batched=batched, stop=stop)
    return _Search(ctx, rain_decode(ctx, on_progress=on_progress), seed_value, started, before)


def greedy(backend: Backend, prompt: PromptLike, *, max_new_tokens: int = 128,
           system: str | None = None, stop_strings: tuple[str, ...] = (),
           continuation: bool = False, stop: threading.Event | None = None,
           time_budget_s: float | None = None) -> GenerationResult:
    """Plain KV-cached greedy decoding: the baseline every comparison uses
    (``continuation`` and ``stop`` as in :func:`generate`). ``time_budget_s``: seconds
    after which no token starts; the answer so far is returned, finish reason
    "time_budget" (cut off). As in :func:`generate`, ``stats["budget_exhausted"]`` says
    whether the time budget (or ``stop``) ended the decoding."""
    _check_backend(backend)
    _check_max_new_tokens(max_new_tokens)
    if time_budget_s is not None:
        RainConfig(time_budget_s=time_budget_s)  # the same validation (ConfigError naming it)
    messages = normalize_messages(prompt, system=system)
    stats = SearchStats()
    start = time.perf_counter()
    before = _counters(backend)
    prompt_ids = prompt_token_ids(backend, prompt, messages, continuation)
    stops = tuple(stop_strings) + stop_strings_of(backend)
    answer: list[int] = []
    eos = frozenset(backend.eos_token_ids)
    calls = ModelCalls(stats, stop=stop, engine_decodes=decodes_natively(backend))
    calls.deadline = None if time_budget_s is None else start + time_budget_s
    exhausted = False
    try:
        reason = run_alone(greedy_continue(calls, prompt_ids, answer, eos_ids=eos,
                                           max_new_tokens=max_new_tokens, stop_strings=stops,
                                           detokenize=backend.detokenize), backend)
    except DeadlineReached:  # stopped by the caller or out of time: the answer so far
        reason = "stopped" if calls.stopped else "time_budget"
        exhausted = True
    text, ids = _final_text(backend, answer, eos, stops)
    out_stats = {"model_calls": stats.model_calls, "answer_tokens": len(ids),
                 "wall_time_s": round(time.perf_counter() - start, 4),
                 "budget_exhausted": exhausted,
                 "backend": _counter_delta(before, _counters(backend))}
    return GenerationResult(text=text, token_ids=tuple(ids), finish_reason=reason,
                            stats=out_stats, method="greedy",
                            model=model_name(backend),
                            prompt_token_ids=tuple(prompt_ids),
                            messages=tuple(dict(m) for m in messages))


# ------------------------------------------------------------------------- helpers
def _resolve_config(config: RainConfig | str | None, time_budget_s: float | None) -> RainConfig:
    if config is None:
        cfg = RainConfig.preset("harmless")
    elif isinstance(config, str):
        cfg = RainConfig.preset(config)
    elif isinstance(config, RainConfig):
        cfg = config
    else:
        raise ConfigError("config", f"must be a RainConfig or a preset name, got {type(config).__name__}")
    return cfg.replace(time_budget_s=time_budget_s) if time_budget_s is not None else cfg


def prompt_token_ids(backend: Backend, prompt: PromptLike, messages: tuple[dict, ...],
                     continuation: bool) -> list[int]:
    """The model's input: the chat template over ``messages``, or with ``continuation``
    the raw prompt text (after the model's BOS, if it uses one)."""
    if not continuation:
        return list(backend.render_prompt(messages))
    if not isinstance(prompt, str):
        raise ConfigError("prompt", "must be a text to continue when continuation=True")
    return list(backend.bos_ids) + backend.tokenize(prompt)


def _check_backend(backend: Any) -> None:
    """ConfigError naming ``backend`` for anything that is not a loaded backend."""
    if isinstance(backend, (str, bytes)) or not all(
            callable(getattr(backend, m, None)) for m in ("render_prompt", "next_logprobs", "detokenize")):
        hint = (f"rainlm.load_backend({backend!r})" if isinstance(backend, str)
                else "rainlm.load_backend() (the embedded model) or load_backend('path/or/spec')")
        raise ConfigError("backend", f"must be a loaded model, got {type(backend).__name__}; "
                                     f"load one first with {hint} and pass that")


def _check_max_new_tokens(max_new_tokens: int) -> None:
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise ConfigError("max_new_tokens", f"must be an integer >= 1, got {max_new_tokens!r}")


def _resolve_rng(seed: int | np.random.Generator | None) -> tuple[np.random.Generator, int | None]:
    if isinstance(seed, np.random.Generator):
        return seed, None
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))  # fresh, but recorded
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer or a numpy Generator, got {seed!r}")
    return np.random.default_rng(seed), seed


def _resolve_evaluator(evaluator: Any, backend: Backend, cfg: RainConfig) -> Evaluator:
    if evaluator is not None:
        return as_evaluator(evaluator, check_arity=True)
    from rainlm.judge.self_eval import SelfEvaluator

    judging = cfg.judging
    return SelfEvaluator(backend, judging.rubric, scoring=judging.scoring,
                         orders=judging.judge_orders)


def _resolve_embedder(embedder: EmbedderLike) -> Embedder | None:
    if embedder is None:
        embedder = "auto"
    if isinstance(embedder, str):
        if embedder == "none":
            return None
        from rainlm.similarity.loading import load_embedder

        return load_embedder(embedder)
    if not hasattr(embedder, "embed"):
        raise ConfigError("embedder", "must have an embed(texts) method, or be 'minilm', "
                                      "'hashing', 'auto' or 'none'")
    return embedder


def _final_text(backend: Backend, answer: list[int], eos: frozenset[int],
                stop_strings: tuple[str, ...]) -> tuple[str, list[int]]:
    """Answer ids up to EOS, and their text cut at the first stop string."""
    ids = []
    for t in answer:
        if t in eos:
            break
        ids.append(t)
    return truncate_at_stop(backend.detokenize(ids), stop_strings), ids


def _counters(backend: Backend) -> dict[str, Any]:
    counters = getattr(backend, "counters", None)
    return counters.snapshot() if counters is not None else {}


def _counter_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before.get(k, 0) for k, v in after.items() if isinstance(v, (int, float))}
