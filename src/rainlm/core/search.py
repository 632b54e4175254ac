"""The parts of a search pass (select, simulate, judge, expand, back up: RAIN_SPEC §3) and
the search state; ``rounds.py`` runs them, one leaf or several per round."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field

import numpy as np

from rainlm.backends.base import Backend
from rainlm.backends.decoding import decodes_natively
from rainlm.config import RainConfig
from rainlm.core.expansion import (Proposal, propose_single_tokens, propose_token_sets,
                                   sample_token_sets, temper)
from rainlm.core.fluency import DISFLUENT_VALUE, mean_nll
from rainlm.core.model_calls import EmbedTexts, ModelCalls, Steps, evaluation_steps
from rainlm.core.selection import mix_with_uniform, normalize
from rainlm.core.simulation import Imagined, SimulationLimits
from rainlm.core.state import SearchState
from rainlm.core.stats import SearchStats
from rainlm.core.stopping import is_terminal, truncate_at_stop
from rainlm.core.tree import ROOT, Tree
from rainlm.core.widening import should_widen
from rainlm.judge.base import EvalRequest, Evaluator, check_value
from rainlm.similarity.base import Embedder


@dataclass
class SearchContext:
    """Everything one generation's search needs, built by ``rainlm.api``: its inputs,
    its model calls and counters, and ``state`` (``core.state``: what the search changes,
    and the only code that changes it)."""

    backend: Backend
    config: RainConfig
    evaluator: Evaluator
    embedder: Embedder | None  # None: no similarity update and no node addition
    rng: np.random.Generator
    messages: tuple[Mapping[str, str], ...]
    prompt_ids: list[int]
    max_new_tokens: int
    stop_strings: tuple[str, ...]
    stats: SearchStats = field(default_factory=SearchStats)
    batched: bool = True
    state: SearchState = field(default_factory=SearchState)
    # once set, no model call starts; held by ``calls`` (read ``calls.stopped``: as an
    # InitVar with a default, ``ctx.stop`` reads None whatever was passed)
    stop: InitVar[threading.Event | None] = None

    def __post_init__(self, stop: threading.Event | None) -> None:
        self.calls = ModelCalls(self.stats, batched=self.batched, stop=stop,
                                engine_decodes=decodes_natively(self.backend))
        self.eos_ids = frozenset(self.backend.eos_token_ids)
        cfg = self.config
        self.sim_limits = SimulationLimits(
            until=cfg.simulation.simulate_until, clause_end_chars=cfg.simulation.clause_end_chars,
            temperature=cfg.simulation.simulation_temperature,
            top_k=cfg.simulation.simulation_top_k,
            max_tokens=cfg.simulation.max_simulation_tokens,
            max_new_tokens=self.max_new_tokens, stop_strings=self.stop_strings)

    # ------------------------------------------------------------------ helpers
    @property
    def tree(self) -> Tree:
        """The search tree (``state.tree``; read it here, change it through ``state``)."""
        return self.state.tree

    def answer_tokens(self, node_id: int) -> list[int]:
        """Answer token ids at a node: everything committed plus the path below the root."""
        return self.tree.path_tokens(node_id, ROOT)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.backend.detokenize(list(ids))

    def relative_depth(self, node_id: int) -> int:
        depth = self.tree.nodes[node_id].depth
        if self.config.candidates.depth_origin == "root":
            depth -= self.tree.nodes[self.tree.root].depth
        return depth


def finish_pass(ctx: SearchContext, path: list[int], answer: list[int], rest: list[int],
                value: float) -> Steps[None]:
    """End a pass: back ``value`` up along ``path`` (``answer``: the tokens at its end,
    ``rest``: the judged tokens below it, embedded for the similarity update) and count it."""
    back_up(ctx, path, value, (yield from path_embeddings(ctx, path, answer, rest)))


def back_up(ctx: SearchContext, path: list[int], value: float,
            embeddings: list[np.ndarray] | None) -> None:
    """Back ``value`` up along ``path`` with the similarity update (§5) and count the pass."""
    sim = ctx.config.similarity
    with ctx.stats.phase("backup"):
        ctx.state.back_up(path, value, embeddings, threshold=sim.similarity_threshold,
                          weight=sim.similarity_weight)
    ctx.stats.searches += 1


def mark_terminal(ctx: SearchContext, node_id: int, answer: list[int]) -> None:
    """Mark a leaf terminal when its answer has EOS, reaches the limit or a stop string."""
    if not ctx.tree.nodes[node_id].terminal and is_terminal(
            answer, ctx.detokenize(answer), eos_ids=ctx.eos_ids,
            max_new_tokens=ctx.max_new_tokens, stop_strings=ctx.stop_strings):
        ctx.state.mark_terminal(node_id)


def note_imagined(ctx: SearchContext, answer: Sequence[int], imagined: Imagined) -> None:
    """Count an imagination drawn after ``answer`` and keep its tokens' log-probabilities."""
    ctx.stats.simulated_tokens += len(imagined.tokens)
    remember_logprobs(ctx, answer, imagined.tokens, imagined.logprobs)


def remember_logprobs(ctx: SearchContext, answer: Sequence[int], tokens: Sequence[int],
                      logprobs: Sequence[float]) -> None:
    """Keep the model's log-probabilities of ``tokens`` drawn after ``answer`` (what the
    fluency floor scores without asking the model again; only with the floor on)."""
    if ctx.config.answers.answer_nll_margin is not None:
        ctx.state.remember_logprobs(answer, tokens, logprobs)


def note_whole_answer(ctx: SearchContext, response_ids: Sequence[int], value: float) -> Steps[float]:
    """Remember the best-valued judged text that is a whole answer (for ``accept_value``
    and ``keep_best_answer``); the first one found wins ties. Returns the answer's value:
    ``value``, unless the fluency floor (``answer_nll_margin``: ``fluent_value``) or
    ``answer_checks`` overrule it (with ``answer_checks_scope`` "new_best": only an
    answer that would become the best is checked)."""
    ids = list(response_ids)
    if (not ctx.config.answers.tracks_answers and ctx.state.nll_limit is None) or not is_terminal(
            ids, ctx.detokenize(ids), eos_ids=ctx.eos_ids,
            max_new_tokens=ctx.max_new_tokens, stop_strings=ctx.stop_strings):
        return value
    value = yield from whole_answer_value(ctx, ids, value)
    if ctx.config.answers.tracks_answers and beats_best_answer(ctx, value):
        ctx.state.set_best_answer(value, ids)
    return value


def whole_answer_value(ctx: SearchContext, ids: list[int], value: float) -> Steps[float]:
    """The value of the whole answer ``ids`` that its judge valued ``value``: the fluency
    floor (``fluent_value``), then — when the search tracks its answers — the
    ``answer_checks``. Kept in ``state.whole_values`` (what the result reports)."""
    answers = ctx.config.answers
    value = yield from fluent_value(ctx, ids, value)
    if answers.tracks_answers and answers.answer_checks and value >= answers.repair_threshold and (
            answers.answer_checks_scope == "every" or beats_best_answer(ctx, value)):
        value = yield from checked_value(ctx, ids, value)
    ctx.state.note_whole_value(ids, value)
    return value


def fluent_value(ctx: SearchContext, ids: list[int], value: float) -> Steps[float]:
    """``value``, or ``DISFLUENT_VALUE`` when the whole answer ``ids`` is above the
    fluency floor (``state.nll_limit``, set by the greedy pass: ``core.reference``). An
    answer already valued the lowest is not scored; an answer with no text is below the
    floor (it is no answer)."""
    limit = ctx.state.nll_limit
    if limit is None or value <= DISFLUENT_VALUE:
        return value
    if not judged_text(ctx, ids).strip():
        return DISFLUENT_VALUE
    nll, scored = yield from mean_nll(ctx.calls, ctx.prompt_ids, ids, ctx.state.token_logprobs)
    ctx.stats.fluency_scored_tokens += scored
    if nll <= limit:
        return value
    if ctx.state.mark_disfluent(judged_text(ctx, ids)):
        ctx.stats.disfluent_answers += 1
    return DISFLUENT_VALUE


def beats_best_answer(ctx: SearchContext, value: float) -> bool:
    """Would a whole answer valued ``value`` become the best one (the first wins ties)?"""
    best = ctx.state.best_answer
    return best is None or value > best[0]


def checked_value(ctx: SearchContext, ids: list[int], value: float) -> Steps[float]:
    """The value of the whole answer ``ids`` judged ``value`` (at least
    ``repair_threshold``) after ``answer_checks``: its longest prefixes whose judged text
    differs from the answer's (``check_prefixes``) are judged, and when every one is below
    ``repair_threshold`` the best of theirs replaces ``value``. With no prefix left to
    judge, ``value`` stands. ``check_judgements`` counts the evaluations asked for (cache
    hits included, as ``repair_judgements`` does, so every evaluation is a pass's or
    accounted for); ``answer_vetoes`` counts distinct vetoed answers, so an answer the
    search reaches again is not counted twice."""
    whole = judged_text(ctx, ids)
    prefixes = check_prefixes(ctx, ids, whole)
    if not prefixes:
        return value
    before = ctx.stats.evaluations
    checks = yield from judge_many(ctx, prefixes)
    ctx.stats.check_judgements += ctx.stats.evaluations - before
    if max(checks) >= ctx.config.answers.repair_threshold:
        return value
    if ctx.state.veto(whole):
        ctx.stats.answer_vetoes += 1
    return max(checks)


def check_prefixes(ctx: SearchContext, ids: list[int], whole: str) -> list[list[int]]:
    """The prefixes ``answer_checks`` judges: the ``answer_checks`` longest whose judged
    texts are shorter than the answer's and differ from each other. An end-of-sequence
    token, or tokens past a stop string, add nothing to the judged text, and a prefix
    without them (or ending inside the stop string: the answer's text plus part of it)
    would only repeat the answer's verdict. None reaches into the committed answer (it
    is final). ``whole``: the answer's judged text."""
    committed = len(ctx.answer_tokens(ctx.tree.root))
    seen: set[str] = set()
    out: list[list[int]] = []
    for end in range(len(ids) - 1, committed, -1):
        if len(out) == ctx.config.answers.answer_checks:
            break
        text = judged_text(ctx, ids[:end])
        if not text.startswith(whole) and text not in seen:
            seen.add(text)
            out.append(ids[:end])
    return out


def accepted_answer(ctx: SearchContext) -> list[int] | None:
    """The judged whole answer that reached ``accept_value`` (the search may end), if any."""
    accept, best = ctx.config.answers.accept_value, ctx.state.best_answer
    return best[1] if accept is not None and best is not None and best[0] >= accept else None


def answer_verdict(ctx: SearchContext, ids: Sequence[int]) -> tuple[float | None, bool | None]:
    """(value, accepted) of the answer ``ids`` the search returns. The value is the one
    the search gave it as a whole answer (after the fluency floor and the checks), else
    its judge's value if its text was judged, else None (never judged). Accepted: only a
    whole answer the search valued at least ``accept_value`` (None without one)."""
    accept = ctx.config.answers.accept_value
    noted = ctx.state.whole_values.get(tuple(int(t) for t in ids))
    accepted = None if accept is None else noted is not None and noted >= accept
    if noted is not None:
        return noted, accepted
    key = EvalRequest(messages=ctx.messages, response=judged_text(ctx, ids)).key
    return ctx.state.eval_cache.get(key), accepted


def keep_simulation(ctx: SearchContext, path: list[int], answer: list[int],
                    imagined: Imagined) -> tuple[list[int], list[int], list[int]]:
    """With ``keep_simulations``: make the imagined continuation's first token set a child
    of the (expanded) leaf, or find the child it already is, and extend the pass's path
    with it, so the back-up gives it this pass's visit and value.

    Returns (path, answer tokens at the path's end, imagined tokens below it); unchanged
    when the setting is off, nothing was imagined or the leaf has no children.
    """
    tree, cfg = ctx.tree, ctx.config
    leaf_id = path[-1]
    kids = tree.child_ids(leaf_id)
    if not cfg.simulation.keep_simulations or not imagined.tokens or not kids:
        return path, answer, imagined.tokens
    length = max(len(tree.nodes[c].tokens) for c in kids)
    tokens = tuple(imagined.tokens[:length])
    child_id, added = child_holding(ctx, leaf_id, tokens, float(np.prod(imagined.probs[:length])))
    ctx.stats.simulations_kept += added
    return path + [child_id], answer + list(tokens), imagined.tokens[length:]


def child_holding(ctx: SearchContext, node_id: int, tokens: tuple[int, ...],
                  prob: float) -> tuple[int, bool]:
    """The child of ``node_id`` that holds ``tokens``, added (with raw probability
    ``prob``, priors renormalised) when there is none; and whether it was added."""
    tree = ctx.tree
    child_id = tree.nodes[node_id].children.get(tokens)
    if child_id is not None:
        return child_id, False
    child_id = ctx.state.add_child(node_id, tokens, prob,
                                   root_mix=ctx.config.candidates.root_prior_mix)
    ctx.stats.nodes_created += 1
    return child_id, True


def judge(ctx: SearchContext, response_ids: Sequence[int]) -> Steps[float]:
    """Value of the answer text (cached by judged text, RAIN_SPEC §4)."""
    return (yield from judge_many(ctx, [response_ids]))[0]


def judged_text(ctx: SearchContext, response_ids: Sequence[int]) -> str:
    """The text the evaluator judges for these answer tokens: cut at a stop string."""
    return truncate_at_stop(ctx.detokenize(response_ids), ctx.stop_strings)


def judge_many(ctx: SearchContext, responses: Sequence[Sequence[int]]) -> Steps[list[float]]:
    """Values of several answer texts; the uncached ones go to the evaluator in one call."""
    requests = [EvalRequest(messages=ctx.messages, response=judged_text(ctx, r))
                for r in responses]
    memory = ctx.state
    cached = [req.key in memory.eval_cache for req in requests]
    todo = list({req.key: req for req, hit in zip(requests, cached) if not hit}.values())
    if todo:
        ctx.calls.check_deadline()  # a judge call is a model call too
        name = getattr(ctx.evaluator, "name", "evaluator")
        started = time.perf_counter()
        with ctx.stats.phase("judge"):
            values = yield from evaluation_steps(ctx.evaluator, todo)
        # a batch's time too: an upper bound on one judgement (parallel mode judges several)
        ctx.calls.judgement_seconds.append(time.perf_counter() - started)
        ctx.stats.evaluator_calls += 1
        for req, value in zip(todo, values):
            memory.remember_verdict(req.key, check_value(value, name))
    ctx.stats.evaluations += len(requests)
    ctx.stats.evaluation_cache_hits += sum(cached)
    out = [memory.eval_cache[req.key] for req in requests]
    for req, hit, value in zip(requests, cached, out):
        memory.log_evaluation({"search": ctx.stats.searches, "step": ctx.stats.steps,
                               "response": req.response, "value": value, "cached": hit})
    return out


def expand(ctx: SearchContext, node_id: int, answer: list[int]) -> Steps[None]:
    """Create the children of a new leaf with normalised priors (§3.3)."""
    cand, tree = ctx.config.candidates, ctx.tree
    remaining = ctx.max_new_tokens - len(answer)
    # Deliberate: a token set never runs past the answer length limit.
    length = min(cand.token_set_length(ctx.relative_depth(node_id)), remaining)
    state = ctx.prompt_ids + answer
    if length == 1:
        spare = max(ctx.config.widening.widening_max_children - cand.single_token_top_k, 0)
        dist = (yield from ctx.calls.next_dists([state]))[0]
        ids, probs = dist.top_k(cand.single_token_top_k + spare)
        if cand.candidate_temperature != 1.0:  # (the paper's raw probabilities otherwise)
            probs = temper(probs, cand.candidate_temperature)
        proposal: Proposal = propose_single_tokens(ids, probs, cand.single_token_top_k, spare)
    else:
        proposal = yield from propose_token_sets(ctx.calls, state, length, cand.num_candidates,
                                      cand.candidate_top_k, ctx.rng, ctx.eos_ids,
                                      clip_greedy=cand.clip_greedy_prior,
                                      temperature=cand.candidate_temperature,
                                      draws=cand.candidate_draws)
    priors = normalize([p for _, p in proposal.candidates])
    if node_id == tree.root:
        priors = mix_with_uniform(priors, cand.root_prior_mix)
    new = ctx.state.add_candidates(node_id, proposal.candidates, priors)
    ctx.stats.nodes_created += len(proposal.candidates)
    if cand.judge_candidates:
        values = yield from judge_many(ctx, [answer + list(tree.nodes[c].tokens) for c in new])
        ctx.state.set_judged(new, values)
    ctx.state.mark_expanded(node_id, proposal.spares)


def maybe_widen(ctx: SearchContext, node_id: int) -> Steps[None]:
    """Dynamic node addition when the children all say the same bad thing (§6)."""
    cfg, tree = ctx.config, ctx.tree
    if ctx.embedder is None or not should_widen(
            tree, node_id, max_children=cfg.widening.widening_max_children,
            variance_scale=cfg.widening.widening_variance_scale,
            value_threshold=cfg.widening.widening_value_threshold):
        return
    with ctx.stats.phase("widen"):
        node = tree.nodes[node_id]
        set_length = max(len(tree.nodes[c].tokens) for c in node.children.values())
        new = None
        if set_length == 1:
            while new is None and (spare := ctx.state.take_spare(node_id)) is not None:
                new = spare if spare[0] not in node.children else None
        else:
            state = ctx.prompt_ids + ctx.answer_tokens(node_id)
            drawn = yield from sample_token_sets(ctx.calls, state, set_length,
                                      cfg.widening.widening_samples,
                                      cfg.candidates.candidate_top_k, ctx.rng, ctx.eos_ids,
                                      include_greedy=False,
                                      temperature=cfg.candidates.candidate_temperature)
            new = next(((t, p) for t, p in drawn if t not in node.children), None)
        if new is not None:
            ctx.state.add_child(node_id, new[0], new[1], root_mix=cfg.candidates.root_prior_mix)
            ctx.stats.nodes_created += 1
            ctx.stats.nodes_added_dynamically += 1


def path_embeddings(ctx: SearchContext, path: list[int], answer: list[int],
                    imagined: list[int]) -> Steps[list[np.ndarray] | None]:
    """Embeddings of the text from each path node (below the root) to the end of the
    imagined completion, in one batch (§5). None when there is no embedder."""
    return (yield from path_embeddings_many(ctx, [(path, answer, imagined)]))[0]


def path_embeddings_many(ctx: SearchContext,
                         items: Sequence[tuple[list[int], list[int], list[int]]]
                         ) -> Steps[list[list[np.ndarray] | None]]:
    """``path_embeddings`` for several (path, answer, imagined) triples in one embed call."""
    if ctx.embedder is None:
        return [None] * len(items)
    texts_per_item = [_path_texts(ctx, *item) for item in items]
    flat = [t for texts in texts_per_item for t in texts]
    if not flat:
        return [None] * len(items)
    with ctx.stats.phase("embed"):
        vectors = yield from embed_cached(ctx, flat)
    out: list[list[np.ndarray] | None] = []
    at = 0
    for texts in texts_per_item:
        out.append(vectors[at:at + len(texts)] if texts else None)
        at += len(texts)
    return out


def _path_texts(ctx: SearchContext, path: list[int], answer: list[int],
                imagined: list[int]) -> list[str]:
    """For each path node below the root: the text from it to the end of the imagination."""
    full = answer + imagined
    offset = len(answer)
    starts = []
    for node_id in reversed(path[1:]):
        offset -= len(ctx.tree.nodes[node_id].tokens)
        starts.append(offset)
    return [ctx.detokenize(full[s:]) for s in reversed(starts)]


def embed_cached(ctx: SearchContext, texts: list[str]) -> Steps[list[np.ndarray]]:
    """Embed texts, reusing vectors of texts embedded before in this generation."""
    cache = ctx.state.embedding_cache
    found = {t: cache[t] for t in texts if t in cache}
    ctx.stats.embedding_cache_hits += sum(1 for t in texts if t in found)
    missing = list(dict.fromkeys(t for t in texts if t not in found))
    if missing:
        if ctx.batched:
            vectors = yield EmbedTexts(ctx.embedder, missing)  # [len(missing), D]
            ctx.stats.embedding_calls += 1
        else:
            one_by_one = []
            for t in missing:
                one_by_one.append((yield EmbedTexts(ctx.embedder, [t])))
            vectors = np.concatenate(one_by_one)
            ctx.stats.embedding_calls += len(missing)
        ctx.stats.embedded_texts += len(missing)
        arrays = [np.asarray(v, dtype=np.float64) for v in vectors]
        ctx.state.remember_embeddings(missing, arrays)
        found.update(zip(missing, arrays))
    return [found[t] for t in texts]
