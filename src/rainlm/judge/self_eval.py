"""Self-evaluation: the frozen model judges its own partial answer (RAIN_SPEC §4).

The judge prompt is a rubric's instruction, its worked examples, then the dialogue and
two options; the value comes from the model's next-token probabilities of the two
option letters after "The answer is: (". Asking a second time with the options swapped
cancels the model's bias towards one letter.

Cost: the fixed part of the prompt (instruction + examples) is tokenized once, and
every context is ``prefix_ids + tokenize(variable part)``, so a backend with a prefix
cache encodes the long few-shot prefix once. All orders of all requests go to the
backend in one ``next_logprobs`` call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, get_args

import numpy as np
from dataclasses import dataclass

from rainlm.backends.base import Backend
from rainlm.backends.steps import NextDists, Steps, drive
from rainlm.config import Scoring
from rainlm.errors import ConfigError, JudgeError
from rainlm.judge.base import EvalRequest, check_value
from rainlm.judge.rubric import Rubric, load_rubric

__all__ = ["ANSWER_CUE", "JudgeDetail", "OrderProbs", "SelfEvaluator", "combine_orders",
           "score_final_answers"]

ANSWER_CUE = "The answer is: ("
SCORINGS: tuple[str, ...] = get_args(Scoring)
TRANSCRIPTS = ("plain", "chat")
GOOD_FIRST, BAD_FIRST = 0, 1
"""Order 1 puts the good option at the first label, order 2 swaps them."""
_ORDER_SETS = {"both": (GOOD_FIRST, BAD_FIRST), "single": (GOOD_FIRST,)}


@dataclass(frozen=True)
class OrderProbs:
    """The judge's answer in one option order."""

    order: int
    """GOOD_FIRST (0) or BAD_FIRST (1)."""
    p_first: float
    """P(first label, e.g. "A") as the next token, in [0, 1] (whole-vocabulary prob)."""
    p_second: float
    """P(second label, e.g. "B") as the next token."""

    @property
    def p_good(self) -> float:
        """P(good option's label) / (P(A) + P(B)), in [0, 1]; 0.5 if both are 0."""
        total = self.p_first + self.p_second
        good = self.p_first if self.order == GOOD_FIRST else self.p_second
        return good / total if total > 0 else 0.5

    @property
    def good_wins(self) -> bool:
        """Whether the good option's label is strictly more probable than the bad one's."""
        return self.p_good > 0.5


@dataclass(frozen=True)
class JudgeDetail:
    """Per-request evidence: one OrderProbs per order asked, and the combined value."""

    orders: tuple[OrderProbs, ...]
    value: float
    """combine_orders(orders, scoring), in [-1, 1]."""


def combine_orders(orders: Sequence[OrderProbs], scoring: str = "paper") -> float:
    """Combine the per-order verdicts into one value in [-1, 1].

    paper:      v = 2 · mean_o 1[good wins in order o] − 1   (two orders: {−1, 0, 1})
    continuous: v = 2 · mean_o P(good)/(P(A)+P(B)) − 1
    Both are symmetric in the orders, so the order asked first cannot matter.
    """
    if not orders:
        raise JudgeError("combine_orders needs at least one order's probabilities")
    if scoring == "paper":
        x = sum(1.0 for o in orders if o.good_wins) / len(orders)
    elif scoring == "continuous":
        x = sum(o.p_good for o in orders) / len(orders)
    else:
        raise ConfigError("scoring", f"must be one of {list(SCORINGS)}, got {scoring!r}")
    return 2.0 * x - 1.0


class SelfEvaluator:
    """Evaluator that asks the backend's own model to judge (RAIN_SPEC §4).

    ``SelfEvaluator(backend, "harmless", scoring="paper", orders=None, shots=None,
    transcript="plain")``: ``rubric`` is a built-in name, a TOML path or a Rubric;
    ``orders`` None takes the rubric's default; ``shots`` None uses every example;
    ``transcript`` "plain" sends the raw Human:/Assistant: prompt, "chat" wraps it as
    one user turn in the backend's chat template and starts the reply with the cue.

    Defaults (measured with ``benchmarks/judge_accuracy.py`` on the embedded 135M model,
    where every variant is at chance): ``transcript="plain"`` (the paper's prompt; the
    chat variant was no better, and works only with a chat template) and
    ``scoring="paper"`` (the paper's vote; an undecided judge returns 0, the neutral
    value, rather than noise, so a weak model's search falls back on the priors).
    """

    def __init__(self, backend: Backend, rubric: str | Rubric = "harmless", *,
                 scoring: str = "paper", orders: str | None = None,
                 shots: int | None = None, transcript: str = "plain"):
        self.backend = backend
        self.rubric = load_rubric(rubric)
        self.scoring = _choice("scoring", scoring, SCORINGS)
        self.transcript = _choice("transcript", transcript, TRANSCRIPTS)
        order_set = _choice("orders", self.rubric.orders if orders is None else orders,
                            tuple(_ORDER_SETS))
        self.orders = _ORDER_SETS[order_set]  # e.g. (GOOD_FIRST, BAD_FIRST)
        n_ex = len(self.rubric.examples)
        if shots is not None and (not isinstance(shots, int) or not 0 <= shots <= n_ex):
            raise ConfigError("shots", f"must be None or an int in [0, {n_ex}], got {shots!r}")
        self.shots = n_ex if shots is None else shots
        self.name = f"self-eval:{self.rubric.name}"
        self.label_ids = self._resolve_label_ids()  # (id of first label, id of second)
        self.letters_estimated = 0
        """Letters a sparse backend left out of its top-k, estimated by the smallest listed."""
        self._cue_ids = backend.tokenize(ANSWER_CUE)
        self._frame = _chat_frame(backend) if self.transcript == "chat" else None
        self.prefix_text = self._fixed_text()
        self.prefix_ids = self._build_prefix_ids()  # [P], tokenized once

    # ----- prompt text -----------------------------------------------------------

    def _options(self, order: int) -> str:
        r = self.rubric
        first, second = ((r.good_option, r.bad_option) if order == GOOD_FIRST
                         else (r.bad_option, r.good_option))
        a, b = r.labels
        return f"Options:\n({a}) {first}\n({b}) {second}\n"

    def _fixed_text(self) -> str:
        """Instruction plus worked examples whose option order alternates (good option
        first, then bad first, ...), as in the authors' prompt; the right letter follows
        from each example's verdict and order."""
        parts = [self.rubric.instruction + "\n\n"]
        for i, ex in enumerate(self.rubric.examples[: self.shots]):
            order = example_order(i)
            answer = self.rubric.labels[0 if (ex.verdict == "good") == (order == GOOD_FIRST) else 1]
            parts.append(f"Human: {ex.user}\nAssistant: {ex.assistant}\n"
                         f"{self._options(order)}{ANSWER_CUE}{answer})\n\n")
        return "".join(parts)

    def variable_text(self, request: EvalRequest, order: int) -> str:
        """The per-request part: dialogue, options in ``order`` (and the cue if plain)."""
        text = _dialogue(request.messages, request.response) + self._options(order)
        return text + ANSWER_CUE if self.transcript == "plain" else text

    def prompt_text(self, request: EvalRequest, order: int = GOOD_FIRST) -> str:
        """The whole judge prompt as text (for people; the model sees ``contexts``)."""
        return self.prefix_text + self.variable_text(request, order)

    # ----- token ids -------------------------------------------------------------

    def _build_prefix_ids(self) -> list[int]:
        ids = self.backend.tokenize(self.prefix_text)
        if self._frame is None:  # plain text starts as the model saw plain text: BOS first
            return list(self.backend.bos_ids) + ids
        return self._frame[0] + ids  # chat: template head, then the fixed text

    def contexts(self, request: EvalRequest) -> list[list[int]]:
        """Token ids of the judge prompt for each order in ``self.orders`` ([O] lists)."""
        out = []
        for order in self.orders:
            ids = self.backend.tokenize(self.variable_text(request, order))
            if self._frame is not None:  # chat: close the user turn, open the reply
                ids = ids + self._frame[1] + self._cue_ids
            out.append(self.prefix_ids + ids)
        return out

    def _resolve_label_ids(self) -> tuple[int, int]:
        """Token id of each label right after the cue; JudgeError unless exactly one token."""
        base = self.backend.tokenize(ANSWER_CUE)
        ids = []
        for label in self.rubric.labels:
            full = self.backend.tokenize(ANSWER_CUE + label)
            if len(full) != len(base) + 1 or full[: len(base)] != base:
                raise JudgeError(
                    f"rubric {self.rubric.source}: field 'labels': label {label!r} is not "
                    f"exactly one token after {ANSWER_CUE!r} for model {self.backend.name!r} "
                    f"({len(full) - len(base)} extra tokens); use single letters such as A/B")
            ids.append(full[-1])
        if ids[0] == ids[1]:
            raise JudgeError(f"rubric {self.rubric.source}: labels map to the same token")
        return ids[0], ids[1]

    # ----- scoring -----------------------------------------------------------------

    def score_details(self, requests: Sequence[EvalRequest]) -> list[JudgeDetail]:
        """Per-request, per-order P(first label), P(second label) and combined value.

        All R requests × O orders go to the backend as one batch of R·O contexts.
        """
        return drive(self.score_detail_steps(requests), self.backend)

    def score_detail_steps(self, requests: Sequence[EvalRequest]) -> Steps[list[JudgeDetail]]:
        """``score_details`` as steps: yields its one model call (a ``NextDists`` on
        this evaluator's backend) instead of making it."""
        if not requests:
            return []
        contexts = [ctx for r in requests for ctx in self.contexts(r)]  # [R*O]
        dists = yield NextDists(contexts, top_k=20, backend=self.backend)
        if len(dists) != len(contexts):
            raise JudgeError(f"backend returned {len(dists)} distributions for "
                             f"{len(contexts)} contexts")
        n_o = len(self.orders)
        details = []
        for i in range(len(requests)):
            per = tuple(OrderProbs(order, *self._letter_probs(dists[i * n_o + j]))
                        for j, order in enumerate(self.orders))
            details.append(JudgeDetail(per, combine_orders(per, self.scoring)))
        return details

    def _letter_probs(self, dist: Any) -> tuple[float, float]:
        """P(first label), P(second label) after the cue.

        A sparse distribution (an HTTP engine's top-k) may leave a letter out: its
        probability is then at most the smallest one listed, which is used as its
        estimate. When both letters are missing the judge cannot answer: JudgeError,
        never a silent verdict."""
        first, second = self.label_ids
        if dist.is_dense:
            return dist.prob_of(first), dist.prob_of(second)
        listed = dict(zip(dist.token_ids.tolist(), np.exp(dist.logprobs).tolist()))
        if first not in listed and second not in listed:
            raise JudgeError(
                f"the judge's option letters ({', '.join(self.rubric.labels)}) are not among the "
                f"{len(listed)} most likely next tokens that {self.backend.name!r} returned, so "
                "the self-evaluation has no verdict; raise the engine's top-logprobs limit (vLLM "
                "--max-logprobs) or judge with another evaluator")
        floor = min(listed.values())
        self.letters_estimated += (first not in listed) + (second not in listed)
        return listed.get(first, floor), listed.get(second, floor)

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[float]:
        """One value in [-1, 1] per request (higher: the good option wins)."""
        return drive(self.evaluate_steps(requests), self.backend)

    def evaluate_steps(self, requests: Sequence[EvalRequest]) -> Steps[list[float]]:
        """``evaluate`` as steps (``StepwiseEvaluator``): a search's driver answers
        the model call, batched with other searches' when it runs several."""
        details = yield from self.score_detail_steps(requests)
        return [check_value(d.value, self.name) for d in details]


def example_order(index: int) -> int:
    """Option order of the worked example at ``index``: GOOD_FIRST, BAD_FIRST, ..."""
    return GOOD_FIRST if index % 2 == 0 else BAD_FIRST


def _choice(field: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(field, f"must be one of {list(allowed)}, got {value!r}")
    return value  # type: ignore[return-value]


_STRUCTURE = re.compile(r"^(\s*)(Options:|\([A-Za-z]\)|The answer is|Human:|Assistant:|"
                        r"Explanation:)", re.IGNORECASE | re.MULTILINE)
"""Lines that would read as the judge prompt's own structure."""


def neutralise(text: str) -> str:
    """``text`` with every line that mimics the judge prompt's structure ("Options:",
    "(A) ...", "The answer is: (", "Human:", "Assistant:") quoted with "| ", so a user or
    an answer cannot plant a fake transcript, options or verdict in the judge's prompt."""
    return _STRUCTURE.sub(lambda m: f"{m.group(1)}| {m.group(2)}", text)


def _dialogue(messages: Sequence[Mapping[str, str]], response: str) -> str:
    """Human:/Assistant: transcript of the conversation, ending with the judged answer;
    the texts are ``neutralise``d."""
    lines = []
    for m in messages:
        if m["role"] == "user":
            lines.append(f"Human: {neutralise(m['content'].strip())}")
        elif m["role"] == "assistant":
            lines.append(f"Assistant: {neutralise(m['content'].strip())}")
    lines.append(f"Assistant: {neutralise(response.strip())}")
    return "\n".join(lines) + "\n"


def _chat_frame(backend: Backend) -> tuple[list[int], list[int]]:
    """(head, tail) ids that the chat template puts around a single user message.

    Found by rendering two different one-token messages and taking the common prefix
    and suffix; JudgeError if the template does not split cleanly that way.
    """
    probes = ("x", "y")
    renders = [backend.render_prompt([{"role": "user", "content": p}]) for p in probes]
    a, b = renders
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    for probe, r in zip(probes, renders):
        if r[head: len(r) - tail] != backend.tokenize(probe):
            raise JudgeError(
                f"transcript='chat': the chat template of {backend.name!r} does not wrap a "
                "user message as head + content + tail; use transcript='plain'")
    return a[:head], a[len(a) - tail:]


def score_final_answers(backend: Backend, rubric: str, judge_orders: str,
                        messages: Sequence[Mapping[str, str]],
                        texts: Sequence[str]) -> list[tuple[float, float]]:
    """(continuous score, paper vote) of each final answer, judged once by the backend's
    own model with ``rubric`` and ``judge_orders``: both values come from the same
    per-order probabilities."""
    evaluator = SelfEvaluator(backend, rubric, scoring="continuous", orders=judge_orders)
    requests = [EvalRequest(messages=tuple(dict(m) for m in messages), response=t) for t in texts]
    return [(float(d.value), float(combine_orders(d.orders, "paper")))
            for d in evaluator.score_details(requests)]
