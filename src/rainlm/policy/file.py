"""The policy file: a flat TOML file a non-programmer writes (``docs/policy.md``), parsed
once into a :class:`~rainlm.policy.model.Policy`.

Every error is a :class:`~rainlm.errors.PolicyError` naming the file, the line and the
key: ``policy.toml line 7, rules.letter_max: ...``. Unknown keys are errors with the
nearest known key suggested.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from rainlm.errors import ConfigError, JudgeError, PolicyError
from rainlm.judge.rubric import Rubric, list_rubrics, load_rubric, rubric_from_dict
from rainlm.judge.text_rules import (AllCapitalsRule, LetterLimitRule, LowercaseRule,
                                     NoCommasRule, PatternRule, PhrasesRule,
                                     RequiredPhrasesRule, TermsRule, TextRule)
from rainlm.policy.keylines import KeyLines
from rainlm.policy.lang import LANGS
from rainlm.policy.model import USES, FailSafe, Policy

__all__ = ["KEYS", "load_policy", "policy_from_text"]

LIST_RULES = {"banned_terms": TermsRule, "forbidden_phrases": PhrasesRule,
              "required_phrases": RequiredPhrasesRule}
"""[rules] keys holding texts, and the rule each becomes (banned_patterns apart)."""
SWITCH_RULES = {"lowercase": LowercaseRule, "all_capitals": AllCapitalsRule,
                "no_commas": NoCommasRule}
"""[rules] keys that are true or false, and the rule ``true`` turns on."""
KEYS: dict[str, tuple[str, ...]] = {
    "": ("name", "lang", "rules", "judge", "fail_safe"),
    "rules": ("banned_terms", "banned_patterns", "patterns_ignore_case", "forbidden_phrases",
              "required_phrases", "lowercase", "all_capitals", "no_commas", "letter_max"),
    "judge": ("use", "rubric"),
    "fail_safe": ("threshold", "action", "refusal_message"),
}
"""The keys each table allows ("" is the top level)."""
_TOML_AT = re.compile(r"at line (\d+)")


def load_policy(path: str | Path) -> Policy:
    """The policy in the TOML file ``path``; PolicyError naming the file, line and key
    when it is missing or wrong. A rubric path in it is read relative to its folder."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PolicyError(path, "is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise PolicyError(path, f"cannot be read ({exc.strerror or exc}); give the path "
                                f"of a policy file (see docs/policy.md)") from None
    return policy_from_text(text, source=str(path), base=file.parent)


def policy_from_text(text: str, *, source: str = "<policy>",
                     base: str | Path | None = None) -> Policy:
    """The policy in TOML ``text``. ``source`` names it in errors and records; ``base``
    is the folder a rubric path is relative to (default: the current folder)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_AT.search(str(exc))
        line = int(at.group(1)) if at else max(1, len(text.splitlines()))  # at the end
        raise PolicyError(source, f"not valid TOML: {exc}", line=line) from None
    return _Reader(data, source, KeyLines(text), Path(base) if base else Path.cwd()).policy()


class _Reader:
    """Reads the parsed tables into a Policy; every error names its key's line."""

    def __init__(self, data: dict[str, Any], source: str, lines: KeyLines, base: Path):
        self.data, self.source, self.lines, self.base = data, source, lines, base

    def fail(self, key: str, message: str) -> NoReturn:
        raise PolicyError(self.source, message, line=self.lines.line_of(key) or
                          (1 if key in ("", "rules") else None), key=key or None)

    def fail_from(self, key: str, exc: ConfigError) -> NoReturn:
        """``exc``'s message (its field left out) as the error of ``key``."""
        self.fail(key, str(exc).removeprefix(f"{exc.field}: "))

    # ------------------------------------------------------------------ tables
    def policy(self) -> Policy:
        self.check_keys(self.data, "")
        lang = self.choice("lang", self.data.get("lang", "en"), LANGS)
        name = self.data.get("name", Path(self.source).stem or "policy")
        self.text("name", name)
        rules_table, judge, fail_safe = (self.table(k) for k in ("rules", "judge", "fail_safe"))
        rules = self.rules(rules_table, lang)
        use = self.choice("judge.use", judge.get("use", "rules"), USES)
        rubric = self.rubric(judge["rubric"]) if "rubric" in judge else None
        if not rules and use != "model":
            self.fail("rules", "the policy has no rules: add at least one under [rules] ("
                               + ", ".join(KEYS["rules"][:2]) + ", ...; see docs/policy.md), "
                               "or judge with the model alone (judge.use = \"model\")")
        if not rules and rubric is None:
            self.fail("judge.use", "use = \"model\" without rules needs judge.rubric: the "
                                   "question the model is asked")
        return Policy(name=name.strip(), lang=lang, rules=rules, use=use, rubric=rubric,
                      fail_safe=self.fail_safe(fail_safe), source=self.source)

    def table(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.fail(key, f"must be a table ([{key}]), got {value!r}")
        self.check_keys(value, key)
        return value

    def check_keys(self, table: dict[str, Any], where: str) -> None:
        allowed = KEYS[where]
        for key in table:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {near[0]!r}? " if near else ""
                self.fail(f"{where}.{key}".lstrip("."),
                          f"unknown key {key!r}; {hint}allowed here: {', '.join(allowed)}")

    # ------------------------------------------------------------------ values
    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty text, got {value!r}")
        return value

    def choice(self, key: str, value: Any, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(key, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value

    def switch(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    # ------------------------------------------------------------------ rules
    def rules(self, table: dict[str, Any], lang: str) -> tuple[TextRule, ...]:
        """The rules in the order the file gives them."""
        out: list[TextRule] = []
        ignore_case = self.switch("rules.patterns_ignore_case",
                                  table.get("patterns_ignore_case", False))
        if "patterns_ignore_case" in table and "banned_patterns" not in table:
            self.fail("rules.patterns_ignore_case", "applies only with rules.banned_patterns")
        if table.get("lowercase") is True and table.get("all_capitals") is True:
            self.fail("rules.all_capitals", "cannot be true with rules.lowercase: no answer "
                                            "with a letter could keep both")
        for key, value in table.items():
            where = f"rules.{key}"
            texts = [value] if isinstance(value, str) else value  # one text, or a list
            try:  # the rules check their texts (text_rules.check_texts)
                if key in LIST_RULES:
                    out.append(LIST_RULES[key](texts, lang=lang))
                elif key == "banned_patterns":
                    out.append(PatternRule(texts, ignore_case=ignore_case, lang=lang))
                elif key in SWITCH_RULES and self.switch(where, value):
                    out.append(SWITCH_RULES[key](lang=lang))
                elif key == "letter_max":
                    out.extend(self.letter_limits(value, lang))
            except ConfigError as exc:
                self.fail_from(where, exc)
        return tuple(out)

    def letter_limits(self, value: Any, lang: str) -> list[LetterLimitRule]:
        key = "rules.letter_max"
        if not isinstance(value, dict) or not value:
            self.fail(key, f"must be a table of letters and counts, e.g. {{ e = 20 }}, "
                           f"got {value!r}")
        out, seen = [], set()
        for letter, count in value.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                self.fail(key, f"the count of {letter!r} must be a whole number >= 0, "
                               f"got {count!r}")
            try:
                rule = LetterLimitRule(letter, count, lang=lang)
            except ConfigError:
                self.fail(key, f"{letter!r} is not a single letter; write one letter per "
                               f"key, e.g. {{ e = 20, a = 10 }}")
            if rule.letter in seen:
                self.fail(key, f"the letter {letter!r} is given twice (letters are counted "
                               f"in any case)")
            seen.add(rule.letter)
            out.append(rule)
        return out

    # ------------------------------------------------------------------ judge
    def rubric(self, value: Any) -> Rubric:
        """A built-in rubric name, a rubric file (relative to the policy's folder), or
        an inline table (name optional)."""
        try:
            if isinstance(value, dict):
                return rubric_from_dict({"name": "policy", **value},
                                        source=f"{self.source} [judge.rubric]")
            if isinstance(value, str) and value.strip():
                if value in list_rubrics():
                    return load_rubric(value)
                path = self.base / Path(value).expanduser()
                if not path.is_file():
                    self.fail("judge.rubric", f"{value!r} is neither a built-in rubric ("
                                              f"{', '.join(list_rubrics())}) nor a rubric "
                                              f"file (looked for {path})")
                return load_rubric(path)
        except JudgeError as exc:
            field = re.search(r"field '([^']+)'", str(exc))
            self.fail("judge.rubric" + (f".{field.group(1)}" if field and isinstance(value, dict)
                                        else ""), str(exc))
        self.fail("judge.rubric", f"must be a built-in rubric ({', '.join(list_rubrics())}), "
                                  f"a rubric file's path or a table, got {value!r}")

    def fail_safe(self, table: dict[str, Any]) -> FailSafe:
        """The [fail_safe] table, checked by FailSafe (its defaults where a key is absent)."""
        try:
            return FailSafe(**table)
        except ConfigError as exc:
            self.fail_from(f"fail_safe.{exc.field}", exc)
