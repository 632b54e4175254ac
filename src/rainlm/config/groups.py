"""The search's settings grouped by concern, one frozen dataclass per concern, each
validated when built. Every setting keeps one name across the library, the command
line, the server's ``rain`` object and the trace (``RainConfig`` takes them flat).
Field defaults are the paper's (its HH run); section numbers (§) refer to
``RAIN_SPEC.md``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, get_args

from rainlm.config.checks import (check, check_choice, check_flag, check_float, check_int,
                                  check_strings)

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
class Selection:
    """Which leaf a pass walks to and which child a step commits (RAIN_SPEC §3.1, §2)."""

    c_puct: float = 2.0
    """Exploration constant c in ``q̂ + c·p·sqrt(n_parent)/(1+n)``. Paper: 2."""
    unvisited_value: UnvisitedValue = "zero"
    """q̂ of a child with no visits yet (the "first-play" value). "zero": the paper's
    q̂ = 0, which is also the q̂ of a child whose visits all scored the lowest value seen,
    so bad evidence never sends the search to the siblings. "parent": the parent's q̂, so
    a child judged worse than its parent ranks below its untried siblings. "neutral": the
    q̂ of the value 0."""
    commit_rule: CommitRule = "visits"
    """Which child a step commits. "visits": the most visited (ties: higher q), the
    paper's robust choice. "secure": the highest lower bound ``q − 1/sqrt(real visits)``
    among the visited children, so a child judged well a few times beats a more visited
    one judged worse (with few passes per step, visits mostly follow the prior)."""
    search_mode: SearchMode = "sequential"
    """"sequential": one leaf per search pass, exactly as the paper (default).
    "parallel": ``parallel_leaves`` leaves per round chosen with a virtual loss, their
    simulations, judgements and embeddings batched (faster; not the paper's tree)."""
    parallel_leaves: int = 4
    """Leaves per round in the parallel search mode."""

    def __post_init__(self) -> None:
        _validate_selection(self)


@dataclass(frozen=True)
class Candidates:
    """The token sets a new leaf's children hold, and their priors (§1, §3.3)."""

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

    def __post_init__(self) -> None:
        _validate_candidates(self)

    def token_set_length(self, depth: int) -> int:
        """Token-set length for children of a node at ``depth`` (§1)."""
        lengths = self.token_set_lengths
        return lengths[min(depth, len(lengths) - 1)]


@dataclass(frozen=True)
class Simulation:
    """The imagined continuation a pass judges (§3.2)."""

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

    def __post_init__(self) -> None:
        _validate_simulation(self)


@dataclass(frozen=True)
class Similarity:
    """Evidence shared between siblings that say the same thing (§5)."""

    similarity_threshold: float = 0.95
    """Siblings with cosine ≥ this share evidence. Paper: 0.95."""
    similarity_weight: float = 0.2
    """Virtual-visit weight per unit of cosine: ``w = weight·cos``. Paper: 0.2."""

    def __post_init__(self) -> None:
        _validate_similarity(self)


@dataclass(frozen=True)
class Widening:
    """Dynamic node addition when every child says the same bad thing (§6)."""

    widening_max_children: int = 20
    """No node addition once a node has this many children. Paper: 20."""
    widening_variance_scale: float = 0.03
    """Add a child when ‖var(child embeddings)‖ < scale·len(token set). Paper: 0.03."""
    widening_value_threshold: float = 0.0
    """... and the best child's q is below this. Paper: 0."""
    widening_samples: int = 2
    """Multi-token sets: sample this many candidates, add the first new one. Paper: 2."""

    def __post_init__(self) -> None:
        _validate_widening(self)


@dataclass(frozen=True)
class Judging:
    """How the model's self-evaluation is asked (§4; other judges ignore it)."""

    rubric: str = "harmless"
    """Self-evaluation rubric: a built-in name or a path to a TOML file."""
    scoring: Scoring = "paper"
    """"paper": the hard two-order vote v ∈ {-1, 0, 1}. "continuous": the mean
    probability of the good option over the orders, mapped to [-1, 1]."""
    judge_orders: Orders = "both"
    """Ask the judge with both option orders ("both", paper's HH run) or once
    ("single", paper's truthfulness run)."""

    def __post_init__(self) -> None:
        _validate_judging(self)


@dataclass(frozen=True)
class Budgets:
    """How much searching each step and the whole answer get, and when it stops (§2)."""

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
    early_stop_visits: int = 6
    """T_m: stop searching a step once the best child has more real visits than this
    and value above ``early_stop_value``. Paper: 6 (harmless), 16 (truthful)."""
    early_stop_value: float = 0.8
    """V: the value threshold of the early stop. Paper: 0.8."""
    time_budget_s: float | None = None
    """Wall-clock budget for the whole answer, in seconds. When it runs out the search
    commits the most-visited path and finishes (anytime search). None = no budget."""
    budget_fallback: BudgetFallback = "truncate"
    """What happens to an unfinished answer when the time budget runs out: "truncate"
    (stop after the most-visited path) or "greedy" (finish with plain greedy decoding,
    which is not searched)."""

    def __post_init__(self) -> None:
        _validate_budgets(self)


@dataclass(frozen=True)
class Answers:
    """Whole answers: what ends one, which is accepted, kept, second-guessed or repaired,
    and the fluency floor."""

    stop_strings: tuple[str, ...] = ()
    """Strings that end the answer (a new dialogue turn, e.g. "\\nHuman:")."""
    accept_value: float | None = None
    """End the search as soon as a judged text is a whole answer (its simulation reached
    EOS, the length limit or a stop string, or the leaf itself was one) valued at least
    this, and answer with it. With an exact rule (+1 = keeps the rule), 1.0 accepts the
    first compliant complete answer the search imagines. The model's self-evaluation
    with ``scoring="paper"`` gives +1 when both option orders prefer the answer (with
    ``judge_orders="single"``: one order, so every value is ±1 — the truthful preset
    therefore does not accept). None: never (the paper)."""
    keep_best_answer: bool = False
    """When a budget ends the search, answer with the best-valued whole answer it judged
    that starts with the committed answer, if that was judged higher than the budget's
    finish (the committed path, then truncated or finished greedily), which is judged
    once more for the comparison (free when its text was judged already). Committed
    tokens are never replaced (they may have been shown). Paper: the budget's finish."""
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

    def __post_init__(self) -> None:
        _validate_answers(self)

    @property
    def tracks_answers(self) -> bool:
        """Whether the search keeps its judged whole answers (``accept_value`` or
        ``keep_best_answer``: what repairs start from and checks second-guess)."""
        return self.accept_value is not None or self.keep_best_answer


GROUPS: dict[str, type] = {
    "selection": Selection, "candidates": Candidates, "simulation": Simulation,
    "similarity": Similarity, "widening": Widening, "judging": Judging, "budgets": Budgets,
    "answers": Answers,
}
"""RainConfig's groups: attribute name -> the dataclass of that concern."""

SETTING_GROUP: dict[str, str] = {f.name: group for group, cls in GROUPS.items()
                                 for f in dataclasses.fields(cls)}
"""Every setting's flat name -> the group that holds it (one declaration: the field)."""


# ---------------------------------------------------------------------- validation
def _validate_selection(s: Selection) -> None:
    check_float(s, "c_puct", 0.0, 1e6)
    check_choice(s, "unvisited_value", get_args(UnvisitedValue))
    check_choice(s, "commit_rule", get_args(CommitRule))
    check_choice(s, "search_mode", get_args(SearchMode))
    check_int(s, "parallel_leaves", 1)


def _validate_candidates(c: Candidates) -> None:
    lengths = c.token_set_lengths
    check(isinstance(lengths, tuple) and len(lengths) > 0
          and all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in lengths),
          "token_set_lengths", "must be a non-empty tuple of integers >= 1", lengths)
    check_choice(c, "depth_origin", get_args(DepthOrigin))
    check_int(c, "single_token_top_k", 1)
    check_int(c, "num_candidates", 1)
    check_int(c, "candidate_top_k", 1)
    check_flag(c, "judge_candidates")
    check_float(c, "candidate_temperature", 0.05, 100.0)  # as simulation_temperature
    check_int(c, "candidate_draws", 1, optional=True)
    check_flag(c, "clip_greedy_prior")
    check_float(c, "root_prior_mix", 0.0, 1.0)


def _validate_simulation(s: Simulation) -> None:
    check_choice(s, "simulate_until", get_args(SimulateUntil))
    check_strings(s, "clause_end_chars")
    check_float(s, "simulation_temperature", 0.05, 100.0)  # lower: exp(logp/T) stays finite
    check_int(s, "simulation_top_k", 1, optional=True)
    check_int(s, "max_simulation_tokens", 0, optional=True)
    check_flag(s, "keep_simulations")


def _validate_similarity(s: Similarity) -> None:
    check_float(s, "similarity_threshold", -1.0, 1.0)
    check_float(s, "similarity_weight", 0.0, 1.0)


def _validate_widening(w: Widening) -> None:
    check_int(w, "widening_max_children", 1)
    check_float(w, "widening_variance_scale", 0.0, 1e6)
    check_float(w, "widening_value_threshold", -1.0, 1.0)
    check_int(w, "widening_samples", 1)


def _validate_judging(j: Judging) -> None:
    check(isinstance(j.rubric, str) and bool(j.rubric), "rubric", "must be a rubric name or path",
          j.rubric)
    check_choice(j, "scoring", get_args(Scoring))
    check_choice(j, "judge_orders", get_args(Orders))


def _validate_budgets(b: Budgets) -> None:
    check_int(b, "max_searches", 1)
    check_int(b, "min_new_searches", 1)
    check_int(b, "max_searches_per_step", 1, optional=True)
    check_int(b, "max_total_searches", 1, optional=True)
    check_float(b, "step_budget_share", 0.0, 1.0, lo_open=True)
    check_flag(b, "skip_forced_steps")
    check_int(b, "early_stop_visits", 0)
    check_float(b, "early_stop_value", -1.0, 1.0)
    check_float(b, "time_budget_s", 0.0, 1e9, lo_open=True, optional=True)
    check_choice(b, "budget_fallback", get_args(BudgetFallback))


def _validate_answers(a: Answers) -> None:
    check_strings(a, "stop_strings")
    check_float(a, "accept_value", -1.0, 1.0, optional=True)
    check_flag(a, "keep_best_answer")
    check_int(a, "answer_checks", 0)
    check_choice(a, "answer_checks_scope", get_args(CheckScope))
    check_float(a, "answer_nll_margin", 0.0, 1e6, optional=True)
    check_float(a, "repair_share", 0.0, 1.0)
    check_float(a, "repair_threshold", -1.0, 1.0)
    check_int(a, "repair_backoff", 0)
    check_flag(a, "repair_from_root")
    check_flag(a, "repair_escalate")
    for name in ("repair_share", "answer_checks"):  # both work on the tracked whole answers
        check(a.tracks_answers or not getattr(a, name), name,
              "needs accept_value or keep_best_answer (they track the whole answers that "
              "repairs start from and checks second-guess); without them set "
              "repair_share=0 and answer_checks=0", getattr(a, name))
