"""RainConfig: every knob of the search, with its paper name and default.

One frozen object, validated once when built; errors name the field and the allowed
range. Presets (``harmless``, ``adversarial``, ``truthful``) are named instances.
Section numbers (§) refer to ``RAIN_SPEC.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from rainlm.errors import ConfigError

SimulateUntil = Literal["clause", "eos"]
SearchMode = Literal["sequential", "parallel"]
DepthOrigin = Literal["root", "answer"]
BudgetFallback = Literal["truncate", "greedy"]
UnvisitedValue = Literal["zero", "parent", "neutral"]
CommitRule = Literal["visits", "secure"]
Scoring = Literal["paper", "continuous"]
Orders = Literal["both", "single"]
CheckScope = Literal["every", "new_best"]


@dataclass(frozen=True)
class RainConfig:
    """Search hyperparameters of RAIN. The field defaults are the paper's (its HH run,
    ``RainConfig.preset("paper")``); the presets "harmless", "adversarial" and
    "truthful" add the default search's settings (``DEFAULT_SEARCH``)."""

    # --- selection (§3.1) -------------------------------------------------------------
    c_puct: float = 2.0
    """Exploration constant c in ``q̂ + c·p·sqrt(n_parent)/(1+n)``. Paper: 2."""
    unvisited_value: UnvisitedValue = "zero"
    """q̂ of a child with no visits yet (the "first-play" value). "zero": the paper's
    q̂ = 0, which is also the q̂ of a child whose visits all scored the lowest value seen,
    so bad evidence never sends the search to the siblings. "parent": the parent's q̂, so
    a child judged worse than its parent ranks below its untried siblings. "neutral": the
    q̂ of the value 0."""

    # --- expansion (§1, §3.3) ---------------------------------------------------------
    token_set_lengths: tuple[int, ...] = (1, 2, 4, 10)
    """Token-set length by depth: entry d for depth d, the last entry for deeper nodes.
    Paper: 1, 2, 4, then 10."""
    depth_origin: DepthOrigin = "root"
    """Where depth is counted from for the length schedule: "root" (the current root,
    as RAIN_SPEC §1 states) or "answer" (the start of the answer, as the published
    code's ``node.step`` does). Default "root"."""
    single_token_top_k: int = 10
    """Candidates for 1-token sets: the top-k next tokens, renormalised. Paper: 10."""
    num_candidates: int = 10
    """Candidates for longer sets: one greedy plus ``num_candidates - 1`` sampled draws
    (duplicates dropped). Paper: 10."""
    candidate_top_k: int = 15
    """Each sampled token of a multi-token candidate comes from the top-k filtered
    distribution. Paper: 15."""
    judge_candidates: bool = False
    """Judge every new child's text (the answer so far plus its token set, without a
    simulation) when it is created, and use that value as its q̂ until it is visited
    (instead of ``unvisited_value``): a candidate that already breaks the rule is never
    tried first. Costs one judged text per candidate: free for a rule, a judge prompt
    each for the model's self-evaluation. Paper: no."""
    candidate_temperature: float = 1.0
    """Temperature of the candidate laws: the 1-token top-k priors and every sampled
    token of a multi-token set (and its greedy set's probability). Paper (HH code): 1;
    the authors' AdvBench code: 2.0, which flattens the priors and diversifies the sets."""
    candidate_draws: int | None = None
    """Sampled draws for a multi-token candidate set, of which the first
    ``num_candidates - 1`` distinct ones are kept. None: ``num_candidates - 1`` (HH code);
    the authors' AdvBench code draws ``2·num_candidates - 1``."""
    clip_greedy_prior: bool = True
    """Clip the greedy candidate's probability to [max+min, sum] of the sampled ones,
    as the published code does, so greedy does not swamp them."""
    root_prior_mix: float = 0.25
    """Weight of the uniform distribution mixed into the root's priors:
    ``p ← (1-w)·p + w/k``. Paper: 0.25."""

    # --- simulation (§3.2) ------------------------------------------------------------
    simulate_until: SimulateUntil = "clause"
    """"clause": imagine until the text ends a clause (``, . ? : ;`` or newline), EOS,
    or the length limit. "eos": until end of sequence (the truthfulness run)."""
    clause_end_chars: tuple[str, ...] = (",", ".", "?", ":", ";", "\n")
    """Characters that end a clause for ``simulate_until="clause"``."""
    simulation_temperature: float = 1.0
    """Temperature of the imagined completion. Paper: 1 (full distribution)."""
    simulation_top_k: int | None = None
    """Imagined tokens come from the top-k next tokens, renormalised (None: the whole
    vocabulary, the paper). A small model's tail at temperature 1 is where noise comes
    from: under a rule that forbids common characters it is the easiest text to keep the
    rule with."""
    max_simulation_tokens: int | None = None
    """Cap on imagined tokens per evaluation (None: only the answer length limit)."""
    keep_simulations: bool = False
    """Keep what each judged simulation found: the imagined continuation's first token set
    becomes a child of the simulated leaf (or that child, if it exists) with the pass's
    visit and value, so a good continuation is not rediscovered set by set. Paper: the
    imagined tokens are only judged and embedded, then thrown away."""

    # --- outer loop (§2) --------------------------------------------------------------
    commit_rule: CommitRule = "visits"
    """Which child a step commits. "visits": the most visited (ties: higher q), the
    paper's robust choice. "secure": the highest lower bound ``q − 1/sqrt(real visits)``
    among the visited children, so a child judged well a few times beats a more visited
    one judged worse (with few passes per step, visits mostly follow the prior)."""
    max_searches: int = 50
    """Search until the root's subtree has this many real visits. Paper: 50."""
    min_new_searches: int = 15
    """At least this many new searches per committed step (unless stopped early).
    Paper: 15."""
    max_searches_per_step: int | None = None
    """Hard cap on new searches per committed step, overriding the two above
    (a practical budget; None = no cap)."""
    max_total_searches: int | None = None
    """One search budget for the whole answer, in search passes. Each step may spend at
    most ``ceil(share × passes left)`` (at least 1) with share = the larger of
    ``step_budget_share`` and 1 / (steps left if the answer runs to its length limit):
    the first steps get the most, what a step does not spend carries over, and the last
    steps may spend the rest. If it runs out anyway, the answer is finished as after a
    time budget (``budget_fallback``). None: no total budget."""
    step_budget_share: float = 0.25
    """Least share of the passes left that one step may spend under ``max_total_searches``."""
    skip_forced_steps: bool = False
    """Commit without searching when the root has a single candidate (every draw gave
    the same token set): a search there can only confirm it. Paper: searches anyway."""
    accept_value: float | None = None
    """End the search as soon as a judged text is a whole answer (its simulation reached
    EOS, the length limit or a stop string, or the leaf itself was one) valued at least
    this, and answer with it. With an exact rule (+1 = keeps the rule), 1.0 accepts the
    first compliant complete answer the search imagines. The model's self-evaluation
    with ``scoring="paper"`` gives +1 when both option orders prefer the answer (with
    ``judge_orders="single"``: one order, so every value is ±1 — the truthful preset
    therefore does not accept). None: never (the paper)."""
    answer_checks: int = 0
    """Second opinions on whole answers the judge finds nothing wrong with (judged at
    least ``repair_threshold``; ``answer_checks_scope`` says which of them): judge their
    ``answer_checks`` longest prefixes too (less the last 1, 2, … tokens; a prefix that
    only drops an end-of-sequence token or text past a stop string has the answer's own
    text and is skipped), and when every one is judged below ``repair_threshold``, take
    the answer's verdict for a misjudgement and give it the best of their values. For a
    rule whose verdict, once bad, stays bad as the text grows (banned words) the prefixes
    of a compliant answer are compliant, so an exact judge's answers keep their values (a
    refusal judge can veto an answer whose refusal phrase ends in its last two tokens
    after a compliance opening); a noisy judge that passes a bad answer must now also
    pass a prefix holding its bad word (with two checks and a judge right with
    probability p, a bad answer wrongly passed gets through with probability 1 − p², a
    good one judged good is wrongly vetoed with (1 − p)²). Costs up to
    ``answer_checks`` judged texts per checked answer (free for a rule, a judge prompt
    per option order each for the model's self-evaluation). Needs ``accept_value`` or
    ``keep_best_answer`` (which track the whole answers). 0: none (the paper)."""
    answer_checks_scope: CheckScope = "every"
    """Which whole answers ``answer_checks`` second-guesses. "every": each one judged at
    least ``repair_threshold``, so answers that tie or trail the best are corrected too
    (and back their corrected values up). "new_best": only one whose verdict would make it
    the best whole answer so far (the one the search accepts or answers with): the checks
    guard what the search returns and cost nothing for the many answers that tie with
    the best, which with the model's own self-evaluation (values −1, 0, +1) is most of
    them."""
    answer_nll_margin: float | None = None
    """The fluency floor. The search starts by decoding the greedy answer (one pass of
    the budget: it is judged, kept in the tree and may be accepted or repaired like any
    whole answer) and scoring it, and from then on a judged whole answer whose mean
    negative log-likelihood per token under the model (nats, temperature 1) is more than
    this above the greedy answer's is valued −1, the lowest value, whatever the judge
    said: it is never accepted or kept and its path is backed up as a failure
    (``core.fluency``). Scoring asks the model only for the tokens the search has not
    drawn itself. None: no floor and no greedy pass (the paper)."""
    keep_best_answer: bool = False
    """When a budget ends the search, answer with the best-valued whole answer it judged
    that starts with the committed answer, if that was judged higher than the budget's
    finish (the committed path, then truncated or finished greedily), which is judged
    once more for the comparison (free when its text was judged already). Committed
    tokens are never replaced (they may have been shown). Paper: the budget's finish."""
    repair_share: float = 0.0
    """Share of the search passes that repair the best judged whole answer while it is
    below ``accept_value`` (+1 without one): rewind it to its longest prefix judged at
    least ``repair_threshold`` (bisecting its prefixes with the evaluator), back off
    ``repair_backoff`` tokens, imagine a new ending to the end of the answer, judge it
    and keep it in the tree as a path. An answer with no prefix judged below the
    threshold has nothing to repair: that pass is a plain search pass. Needs ``accept_value`` or ``keep_best_answer``
    (which track the whole answers). 0: never (the paper)."""
    repair_threshold: float = 0.0
    """Least value of a prefix that a repair keeps (a rule's compliant text is +1, its
    first violation below 0)."""
    repair_backoff: int = 4
    """Tokens a repair gives back before the first prefix judged bad, so the new ending
    can rephrase rather than finish the same word."""
    repair_from_root: bool = True
    """Repair also when the judge finds no good text past the committed answer (the
    repair is then a fresh answer from there); False runs a plain search pass instead,
    leaving early bad starts (a compliance opening) to the tree."""
    repair_escalate: bool = False
    """Double the back-off for each repair in a row that did not beat the best answer
    (reset when one does), so a bad word that the kept prefix makes unavoidable is
    escaped by rewinding further, up to a fresh answer."""
    early_stop_visits: int = 6
    """T_m: stop searching a step once the best child has more real visits than this
    and value above ``early_stop_value``. Paper: 6 (harmless), 16 (truthful)."""
    early_stop_value: float = 0.8
    """V: the value threshold of the early stop. Paper: 0.8."""

    search_mode: SearchMode = "sequential"
    """"sequential": one leaf per search pass, exactly as the paper (default).
    "parallel": ``parallel_leaves`` leaves per round chosen with a virtual loss, their
    simulations, judgements and embeddings batched (faster; not the paper's tree)."""
    parallel_leaves: int = 4
    """Leaves per round in the parallel search mode."""

    # --- similarity update (§5) -------------------------------------------------------
    similarity_threshold: float = 0.95
    """Siblings with cosine ≥ this share evidence. Paper: 0.95."""
    similarity_weight: float = 0.2
    """Virtual-visit weight per unit of cosine: ``w = weight·cos``. Paper: 0.2."""

    # --- dynamic node addition (§6) ---------------------------------------------------
    widening_max_children: int = 20
    """No node addition once a node has this many children. Paper: 20."""
    widening_variance_scale: float = 0.03
    """Add a child when ‖var(child embeddings)‖ < scale·len(token set). Paper: 0.03."""
    widening_value_threshold: float = 0.0
    """... and the best child's q is below this. Paper: 0."""
    widening_samples: int = 2
    """Multi-token sets: sample this many candidates, add the first new one. Paper: 2."""

    # --- judging (§4) -----------------------------------------------------------------
    rubric: str = "harmless"
    """Self-evaluation rubric: a built-in name or a path to a TOML file."""
    scoring: Scoring = "paper"
    """"paper": the hard two-order vote v ∈ {-1, 0, 1}. "continuous": the mean
    probability of the good option over the orders, mapped to [-1, 1]."""
    judge_orders: Orders = "both"
    """Ask the judge with both option orders ("both", paper's HH run) or once
    ("single", paper's truthfulness run)."""

    # --- budgets and stopping ---------------------------------------------------------
    time_budget_s: float | None = None
    """Wall-clock budget for the whole answer, in seconds. When it runs out the search
    commits the most-visited path and finishes (anytime search). None = no budget."""
    budget_fallback: BudgetFallback = "truncate"
    """What happens to an unfinished answer when the time budget runs out: "truncate"
    (stop after the most-visited path) or "greedy" (finish with plain greedy decoding,
    which is not searched)."""
    stop_strings: tuple[str, ...] = ()
    """Strings that end the answer (a new dialogue turn, e.g. "\\nHuman:")."""

    # --- named presets --------------------------------------------------------------
    preset_name: str = field(default="custom", compare=False)
    """Name of the preset this config came from (for logs; not a search knob)."""

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "RainConfig":
        """A named preset, optionally with some fields overridden."""
        if name not in PRESETS:
            raise ConfigError("preset", f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]

    def replace(self, **changes: Any) -> "RainConfig":
        """A copy with some fields changed (validated again)."""
        check_field_names(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def token_set_length(self, depth: int) -> int:
        """Token-set length for children of a node at ``depth`` (§1)."""
        lengths = self.token_set_lengths
        return lengths[min(depth, len(lengths) - 1)]


def check_field_names(names: Any) -> None:
    """ConfigError for a name that is not a RainConfig field, with the closest one."""
    import difflib

    known = [f.name for f in dataclasses.fields(RainConfig)]
    for key in names:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(key, f"is not a RainConfig field; {hint}known fields: {sorted(known)}")


def _check(cond: bool, field_name: str, message: str, value: Any) -> None:
    if not cond:
        raise ConfigError(field_name, f"{message}, got {value!r}")


def _check_int(cfg: RainConfig, name: str, lo: int, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if optional and value is None:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    _check(ok, name, f"must be an integer >= {lo}" + (" or None" if optional else ""), value)


def _check_float(cfg: RainConfig, name: str, lo: float, hi: float, *, lo_open: bool = False,
                 optional: bool = False) -> None:
    value = getattr(cfg, name)
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and value <= hi
    bracket = "(" if lo_open else "["
    _check(ok, name, f"must be a number in {bracket}{lo}, {hi}]" + (" or None" if optional else ""), value)


def _check_choice(cfg: RainConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    _check(value in choices, name, f"must be one of {choices}", value)


def _validate(cfg: RainConfig) -> None:
    _check_float(cfg, "c_puct", 0.0, 1e6)
    _check_choice(cfg, "unvisited_value", get_args(UnvisitedValue))
    _check_choice(cfg, "commit_rule", get_args(CommitRule))
    lengths = cfg.token_set_lengths
    _check(isinstance(lengths, tuple) and len(lengths) > 0
           and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in lengths),
           "token_set_lengths", "must be a non-empty tuple of integers >= 1", lengths)
    _check_choice(cfg, "depth_origin", get_args(DepthOrigin))
    _check_int(cfg, "single_token_top_k", 1)
    _check_int(cfg, "num_candidates", 1)
    _check_int(cfg, "candidate_top_k", 1)
    _check_float(cfg, "root_prior_mix", 0.0, 1.0)
    _check_float(cfg, "candidate_temperature", 0.05, 100.0)  # as simulation_temperature
    _check_int(cfg, "candidate_draws", 1, optional=True)
    _check_choice(cfg, "simulate_until", get_args(SimulateUntil))
    _check(isinstance(cfg.clause_end_chars, tuple) and all(isinstance(c, str) and c for c in cfg.clause_end_chars),
           "clause_end_chars", "must be a tuple of non-empty strings", cfg.clause_end_chars)
    _check_float(cfg, "simulation_temperature", 0.05, 100.0)  # lower: exp(logp/T) stays finite
    _check_int(cfg, "simulation_top_k", 1, optional=True)
    _check_float(cfg, "answer_nll_margin", 0.0, 1e6, optional=True)
    _check_int(cfg, "max_simulation_tokens", 0, optional=True)
    _check_int(cfg, "max_searches", 1)
    _check_int(cfg, "min_new_searches", 1)
    _check_int(cfg, "max_searches_per_step", 1, optional=True)
    _check_int(cfg, "max_total_searches", 1, optional=True)
    _check_float(cfg, "step_budget_share", 0.0, 1.0, lo_open=True)
    _check_float(cfg, "accept_value", -1.0, 1.0, optional=True)
    for flag in ("keep_simulations", "skip_forced_steps", "judge_candidates", "keep_best_answer",
                 "repair_escalate", "repair_from_root"):
        _check(isinstance(getattr(cfg, flag), bool), flag, "must be true or false", getattr(cfg, flag))
    _check_float(cfg, "repair_share", 0.0, 1.0)
    _check_float(cfg, "repair_threshold", -1.0, 1.0)
    _check_int(cfg, "repair_backoff", 0)
    _check_int(cfg, "answer_checks", 0)
    tracked = cfg.accept_value is not None or cfg.keep_best_answer
    for name in ("repair_share", "answer_checks"):  # both work on the tracked whole answers
        _check(tracked or not getattr(cfg, name), name,
               "needs accept_value or keep_best_answer (they track the whole answers that "
               "repairs start from and checks second-guess); without them set "
               "repair_share=0 and answer_checks=0", getattr(cfg, name))
    _check_choice(cfg, "answer_checks_scope", get_args(CheckScope))
    _check_int(cfg, "early_stop_visits", 0)
    _check_choice(cfg, "search_mode", get_args(SearchMode))
    _check_int(cfg, "parallel_leaves", 1)
    _check_float(cfg, "early_stop_value", -1.0, 1.0)
    _check_float(cfg, "similarity_threshold", -1.0, 1.0)
    _check_float(cfg, "similarity_weight", 0.0, 1.0)
    _check_int(cfg, "widening_max_children", 1)
    _check_float(cfg, "widening_variance_scale", 0.0, 1e6)
    _check_float(cfg, "widening_value_threshold", -1.0, 1.0)
    _check_int(cfg, "widening_samples", 1)
    _check(isinstance(cfg.rubric, str) and bool(cfg.rubric), "rubric", "must be a rubric name or path", cfg.rubric)
    _check_choice(cfg, "scoring", get_args(Scoring))
    _check_choice(cfg, "judge_orders", get_args(Orders))
    _check_float(cfg, "time_budget_s", 0.0, 1e9, lo_open=True, optional=True)
    _check_choice(cfg, "budget_fallback", get_args(BudgetFallback))
    _check(isinstance(cfg.stop_strings, tuple) and all(isinstance(s, str) and s for s in cfg.stop_strings),
           "stop_strings", "must be a tuple of non-empty strings", cfg.stop_strings)


DEFAULT_SEARCH: dict[str, Any] = dict(
    unvisited_value="neutral", depth_origin="answer", commit_rule="secure",
    keep_simulations=True, skip_forced_steps=True, max_total_searches=64,
    step_budget_share=0.5, budget_fallback="greedy", simulate_until="eos",
    accept_value=1.0, keep_best_answer=True, num_candidates=4, repair_share=0.5,
    answer_checks=2, answer_checks_scope="new_best", simulation_temperature=0.7,
    simulation_top_k=40)
"""What the default search changes from the paper's (``benchmarks/RESULTS.md``, frontier
and ablation; ``docs/search.md``): untried children rank as undecided rather than as bad,
the token-set schedule counts from the answer's start (as the published code does), a
step commits the child with the best lower confidence bound, judged simulations stay in
the tree, forced steps are not searched, one budget of 64 passes bounds the whole answer
(each step may spend half of what is left), each simulation imagines the whole rest of
the answer (so every pass judges a whole answer), the first whole answer judged +1 is the
answer, the best whole answer judged beats a worse committed one, multi-token candidate
sets are greedy + 3 draws (their draws cost tokens; the simulations find continuations
too), half the passes repair the best whole answer judged so far from just before its
first bad stretch, a whole answer that would become the best is judged again on its two
longest prefixes and loses its verdict when both are judged bad (a judge right 80% of
the time then passes a broken answer 7% of the time, not 20%), an answer a budget
cut short is finished greedily (and marked so) rather than cut off, and imaginations
come from the model's top 40 tokens at temperature 0.7, so a rule the model finds hard
is not kept by writing noise (issue 27: chosen on the dev split, ``benchmarks/RESULTS.md``)."""


PRESETS: dict[str, RainConfig] = {
    "paper": RainConfig(preset_name="paper"),
    "harmless": RainConfig(preset_name="harmless", early_stop_visits=6, **DEFAULT_SEARCH),
    "adversarial": RainConfig(preset_name="adversarial", early_stop_visits=5, rubric="adversarial",
                              **DEFAULT_SEARCH),
    "truthful": RainConfig(preset_name="truthful", early_stop_visits=16, rubric="truthful",
                           judge_orders="single", **{**DEFAULT_SEARCH, "accept_value": None}),
}
"""Named configs. "paper" is the published HH search and never changes; the others are
the default search (DEFAULT_SEARCH) with the rubric and stop rules of their use ("truthful"
judges one option order, so every value is ±1: it accepts no answer on one vote)."""
