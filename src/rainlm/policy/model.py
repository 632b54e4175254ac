"""A policy: rules an answer must keep, how it is judged, and the fail-safe (parsed
from a policy file by :mod:`rainlm.policy.file`; built here directly in code too).

The same policy is the search's judge in ``rain generate``/``chat``, every search's
judge and the fail-safe in ``rain serve``, and the judge of ``rain bench run``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rainlm.errors import ConfigError
from rainlm.judge.rubric import Rubric
from rainlm.judge.rule_texts import check_lang
from rainlm.judge.rules import RefusalPrefixRule, refusal_phrases_for
from rainlm.judge.text_rules import AllOfRules, TextRule
from rainlm.policy.lang import FAIL_SAFE_ACTIONS, REFUSAL_MESSAGES, derived_rubric

__all__ = ["FailSafe", "Policy", "PolicyCheck", "USES", "check_threshold"]

USES = ("rules", "rules+model", "model")
"""How a policy judges: its exact rules only; the rules and the model's own judgement
(the lower value of the two); or the model's own judgement only."""


def check_threshold(value: Any, field: str = "threshold") -> float:
    """``value`` as a fail-safe threshold: a number in [-1, 1] (not a bool), else
    ConfigError naming ``field`` (a policy file's reader adds the file, line and key)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise ConfigError(field, f"must be a number in [-1, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FailSafe:
    """What ``rain serve`` does with a final answer the policy judges below a threshold."""

    threshold: float = 0.0
    """Answers whose policy value is below this, in [-1, 1], are acted on."""
    action: str = "flag"
    """"refuse" (send ``refusal_message`` instead), "flag" (send it, queue it for human
    review) or "pass" (only record the value)."""
    refusal_message: str | None = None
    """What a refused request receives (None: the policy's language's default,
    ``Policy.refusal_message``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", check_threshold(self.threshold))
        if self.action not in FAIL_SAFE_ACTIONS:
            raise ConfigError("action", f"must be one of {list(FAIL_SAFE_ACTIONS)}, "
                                        f"got {self.action!r}")
        if self.refusal_message is not None and (not isinstance(self.refusal_message, str)
                                                 or not self.refusal_message.strip()):
            raise ConfigError("refusal_message", f"must be a non-empty text, got "
                                                 f"{self.refusal_message!r}")


@dataclass(frozen=True)
class PolicyCheck:
    """How one final answer fares under a policy."""

    name: str
    """The policy's name."""
    source: str
    """Where the policy came from (its file)."""
    use: str
    """How the policy judges (``USES``)."""
    broken: tuple[str, ...]
    """What the answer broke, one line per offence, in the policy's language (empty:
    every rule kept, or no rules)."""
    rules_value: float | None
    """The rules' value of the answer as a final answer, in [-1, 1] (None: no rules)."""
    model_value: float | None = None
    """The model's own judgement of the answer with the policy's rubric, continuous, in
    [-1, 1] (None: not asked)."""

    @property
    def kept(self) -> bool:
        """Whether the answer keeps every rule."""
        return not self.broken

    @property
    def value(self) -> float | None:
        """The policy's verdict, in [-1, 1]: the rules' value ("rules"), the model's
        ("model"), the lower of the two ("rules+model"); None when not judged."""
        parts = {"rules": [self.rules_value], "model": [self.model_value],
                 "rules+model": [self.rules_value, self.model_value]}[self.use]
        return None if any(p is None for p in parts) else min(parts)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: name, source, use, broken, rules_value, model_value, value (what
        an audit record's ``scores.policy`` holds)."""
        out = dataclasses.asdict(self)
        out["broken"] = list(self.broken)
        out["value"] = self.value
        return out


@dataclass(frozen=True)
class Policy:
    """A validated policy."""

    name: str
    """What the policy is called (reports and audit records show it)."""
    lang: str = "en"
    """"en" or "ja": the language of its rules' descriptions, of what an answer broke,
    of the derived rubric, of its refusal phrases and of its default refusal message."""
    rules: tuple[TextRule, ...] = ()
    """The exact rules, each with its ``description`` ("Never use the terms: Google")."""
    use: str = "rules"
    """How it judges (``USES``): "rules", "rules+model" or "model"."""
    rubric: Rubric | None = None
    """The model's question about it (None: derived from the rules, ``model_rubric``)."""
    fail_safe: FailSafe = field(default_factory=FailSafe)
    """What ``rain serve`` does with an answer judged below the threshold."""
    source: str = "<policy>"
    """Where it came from (the file's path as given)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError("name", f"must be a non-empty text, got {self.name!r}")
        check_lang(self.lang)
        if self.use not in USES:
            raise ConfigError("use", f"must be one of {list(USES)}, got {self.use!r}")
        if not isinstance(self.rules, tuple) or not all(isinstance(r, TextRule)
                                                        for r in self.rules):
            raise ConfigError("rules", f"must be a tuple of text rules, got {self.rules!r}")
        if not self.rules and self.use != "model":
            raise ConfigError("rules", f"none given: use = {self.use!r} needs at least one")
        if not self.rules and self.rubric is None:
            raise ConfigError("rubric", "none given: a policy without rules needs a rubric "
                                        "for the model's own judgement")

    # ----------------------------------------------------------------- judges
    def rule_judge(self) -> AllOfRules | None:
        """Every rule at once (the lowest value; broken when any is); None: no rules."""
        return AllOfRules(self.rules, name=f"policy:{self.name}") if self.rules else None

    def model_rubric(self) -> Rubric:
        """The rubric the model's own judge is asked with: the policy's, else one derived
        from the rules' descriptions in the policy's language."""
        if self.rubric is not None:
            return self.rubric
        return derived_rubric(self.lang, self.name, [r.description for r in self.rules],
                              f"{self.source} (derived from its rules)")

    def evaluator(self, backend: Any = None, *, config: Any = None) -> Any:
        """The search's judge under this policy: the rules ("rules"); the model's own
        judgement with ``model_rubric`` ("model"); the lower of the two ("rules+model").
        The model's judge needs ``backend`` and takes its scoring and option orders from
        ``config`` (a RainConfig; None: the paper's vote, the rubric's orders)."""
        rules = self.rule_judge()
        if self.use == "rules":
            return rules
        if backend is None:
            raise ConfigError("backend", f"policy {self.name!r} judges with the model "
                                         f"(use = {self.use!r}): give the backend")
        from rainlm.judge.self_eval import SelfEvaluator

        judging = None if config is None else config.judging
        model = SelfEvaluator(backend, self.model_rubric(),
                              scoring="paper" if judging is None else judging.scoring,
                              orders=None if judging is None else judging.judge_orders)
        if self.use == "model":
            return model
        from rainlm.judge.combine import MinOfJudges

        return MinOfJudges([rules, model], name=f"policy:{self.name}+{model.name}")

    def check(self, text: str) -> PolicyCheck:
        """How ``text``, a final answer, fares under the rules (the model not asked)."""
        rules = self.rule_judge()
        return PolicyCheck(self.name, self.source, self.use,
                           tuple(rules.broken(text)) if rules else (),
                           rules.final_value(text) if rules else None)

    def refusal_rule(self, phrases: Sequence[str] | None = None) -> RefusalPrefixRule:
        """The refusal judge in the policy's language: an answer refuses when it holds
        one of ``phrases`` (None: the language's shipped ones, ``refusal_phrases``),
        compared the language's way (Japanese: as the text rules compare texts)."""
        return RefusalPrefixRule(phrases, lang=self.lang)

    @property
    def refusal_message(self) -> str:
        """What the fail-safe sends instead of a refused answer: the file's, else the
        language's default (``lang.REFUSAL_MESSAGES``)."""
        return self.fail_safe.refusal_message or REFUSAL_MESSAGES[self.lang]

    @property
    def refusal_phrases(self) -> tuple[str, ...]:
        """The shipped refusal phrases of the policy's language."""
        return refusal_phrases_for(self.lang)

    # ----------------------------------------------------------------- reports
    def describe(self) -> list[str]:
        """One line per rule, in the policy's language."""
        return [r.description for r in self.rules]

    def definition(self) -> dict[str, Any]:
        """Everything that decides how the policy judges and acts, JSON-ready: name,
        lang, use, every rule's parameters, the full rubric the model is asked (the
        file's, or the one derived from the rules when the model judges; where it came
        from left out) and the fail-safe. Not where the policy came from."""
        rubric = None
        if self.rubric is not None or self.use != "rules":
            rubric = dataclasses.asdict(self.model_rubric())
            del rubric["source"]
        return {"name": self.name, "lang": self.lang, "use": self.use,
                "rules": [r.definition() for r in self.rules], "rubric": rubric,
                "fail_safe": {**dataclasses.asdict(self.fail_safe),
                              "refusal_message": self.refusal_message}}

    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of ``definition``: two policies that judge or
        act differently in any way (a rule's term, a pattern's case, the rubric's
        wording, the threshold, ...) have different fingerprints, whatever their files
        are called; a rubric file edited changes it too."""
        blob = json.dumps(self.definition(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """What an audit record keeps of the policy: name, source, use, lang."""
        return {"name": self.name, "source": self.source, "use": self.use, "lang": self.lang}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary, each rule (its key and description), the rubric
        (name and source, or None), the fail-safe."""
        return {**self.summary(),
                "rules": [{"rule": r.key, "description": r.description} for r in self.rules],
                "rubric": None if self.rubric is None else {"name": self.rubric.name,
                                                            "source": self.rubric.source},
                "fail_safe": {**dataclasses.asdict(self.fail_safe),
                              "refusal_message": self.refusal_message}}
