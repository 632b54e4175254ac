"""Exact rules about an answer's text, in any language: what a policy file is made of.

Every rule gives a value in [-1, 1] to any prefix of an answer (what the search asks a
judge about) and decides whether an answer breaks it, like the rules of
:mod:`rainlm.judge.rules`, and is graded the same way: +1 while the text keeps the rule;
once it breaks it, −1 + the share of the text before the first offending character, so
among texts of about the same length the one that keeps the rule longer ranks higher
and every violation ranks below every compliant text. They are Evaluators
(``rainlm.generate(..., evaluator=rule)`` searches with them).

Each rule also describes itself (``description``) and names what a text broke
(``broken(text)``) in the language it was built with (``lang``: "en" or "ja";
:mod:`rainlm.judge.rule_texts`). ``key`` is its key in a policy file's ``[rules]``.

Terms and phrases are matched after Unicode NFKC and case folding, so full-width and
half-width forms match (:mod:`rainlm.judge.matching`).

- :class:`TermsRule`: banned terms (Latin-script terms as whole words, others anywhere).
- :class:`PatternRule`: banned regular expressions (a match must hold a character).
- :class:`PhrasesRule` / :class:`RequiredPhrasesRule`: forbidden / required phrases.
- :class:`LowercaseRule`, :class:`AllCapitalsRule`, :class:`NoCommasRule`,
  :class:`LetterLimitRule`: rules on characters.
- :class:`AllOfRules`: several rules at once (the lowest value; broken when any is).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rainlm.errors import ConfigError
from rainlm.judge.matching import TermMatcher, fold_char, normalise, share_before
from rainlm.judge.rule_texts import check_lang, listing, quoted, say
from rainlm.judge.rules import Rule

__all__ = ["AllCapitalsRule", "AllOfRules", "COMMAS", "LetterLimitRule", "LowercaseRule",
           "NoCommasRule", "PatternRule", "PhrasesRule", "RequiredPhrasesRule", "TermsRule",
           "TextRule", "check_texts"]

COMMAS = ",、，､﹐﹑"
"""What NoCommasRule forbids: the comma, the Japanese comma (読点) and their full-width,
half-width and small forms."""


def check_texts(values: Iterable[str], field: str) -> tuple[str, ...]:
    """``values`` as a tuple of non-empty texts, else ConfigError naming ``field`` (the
    rules' lists, and a policy file's, whose reader adds the file, line and key)."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ConfigError(field, f"must be a list of texts, e.g. [\"one\", \"two\"], "
                                 f"got {values!r}")
    out = tuple(values)
    if not out:
        raise ConfigError(field, "must be a list of texts with at least one text, got []")
    for v in out:
        if not isinstance(v, str) or not normalise(v).strip():
            raise ConfigError(field, f"must hold non-empty texts, got {v!r}")
    return out


def _only_empty(pattern: re.Pattern[str]) -> bool:
    """Whether ``pattern`` can match nothing but the empty text (``\\b``, ``(?=x)``)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        return _parser.parse(pattern.pattern, pattern.flags).getwidth()[1] == 0
    except Exception:  # private API: without it the check is skipped
        return False


def _first_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern``'s first match in ``text`` that holds a character (None: none)."""
    return next((m for m in pattern.finditer(text) if m.end() > m.start()), None)


class TextRule(Rule):
    """A rule that says what it is and what a text broke, in ``lang``. Subclasses give
    ``first_offence`` (or override ``value``/``violated``), ``description`` and
    ``broken``."""

    key = "rule"
    """The rule's key in a policy file's [rules] table."""

    def __init__(self, name: str, lang: str):
        self.name = name
        self.lang = check_lang(lang)

    def first_offence(self, text: str) -> float | None:  # pragma: no cover - overridden
        """The share of ``text`` before the first offending character (None: none)."""
        raise NotImplementedError

    def value(self, text: str) -> float:
        """+1 while kept; else −1 + the share of the text before the first offence."""
        share = self.first_offence(text)
        return 1.0 if share is None else -1.0 + share

    def violated(self, text: str) -> bool:
        return self.first_offence(text) is not None

    def final_value(self, text: str) -> float:
        """The value of ``text`` as a whole, final answer (the fail-safe's): the same as
        ``value`` except for rules that judge a partial answer leniently."""
        return self.value(text)

    def parameters(self) -> dict[str, Any]:
        """What the rule looks for, JSON-ready (none for a rule its key says in full)."""
        return {}

    def definition(self) -> dict[str, Any]:
        """The whole rule, JSON-ready: its key, name, language and ``parameters`` (what a
        policy's fingerprint is made of)."""
        return {"rule": self.key, "name": self.name, "lang": self.lang, **self.parameters()}

    @property
    def description(self) -> str:  # pragma: no cover - overridden
        """The rule in one line, in ``lang``."""
        raise NotImplementedError

    def broken(self, text: str) -> list[str]:  # pragma: no cover - overridden
        """What ``text`` broke, one line each, in ``lang`` (empty: the rule is kept)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description!r}>"


class _FoundRule(TextRule):
    """A rule broken wherever one of its texts is found (``matcher``): banned terms,
    forbidden phrases."""

    texts_field = ""
    """What its texts are called (its error's field, its ``parameters`` key)."""
    whole_words = True
    """Whether Latin-script texts match as whole words (``TermMatcher``)."""

    def __init__(self, texts: Iterable[str], name: str, lang: str):
        super().__init__(name, lang)
        self.matcher = TermMatcher(check_texts(texts, self.texts_field),
                                   whole_words=self.whole_words)

    def parameters(self) -> dict[str, Any]:
        return {self.texts_field: list(self.matcher.terms)}

    def found(self, text: str) -> list[str]:
        """Its texts that occur in ``text`` (as given), in order of occurrence."""
        return [m.term for m in self.matcher.all(text)]

    def first_offence(self, text: str) -> float | None:
        first = self.matcher.first(text)
        return None if first is None else first.share


class TermsRule(_FoundRule):
    """Banned terms: a Latin-script term as whole words (not inside a longer Latin
    word), any other term anywhere; any case, full- or half-width."""

    key, texts_field = "banned_terms", "terms"

    def __init__(self, terms: Iterable[str], name: str = "banned-terms", *, lang: str = "en"):
        super().__init__(terms, name, lang)
        self.terms = self.matcher.terms

    @property
    def description(self) -> str:
        return say(self.lang, "terms", items=listing(self.lang, self.terms))

    def broken(self, text: str) -> list[str]:
        return [say(self.lang, "terms.broken", item=t) for t in dict.fromkeys(self.found(text))]


class PatternRule(TextRule):
    """Banned regular expressions (Python's ``re``), searched in the answer's NFKC form
    (full-width letters and digits read as ASCII); ``ignore_case`` for every pattern.
    Only a match holding at least one character is an offence: ``\\b(Google)?\\b``
    finds "Google", not the empty text between two words. A pattern that matches the
    empty text, or nothing else, is refused."""

    key = "banned_patterns"

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False,
                 name: str = "banned-patterns", lang: str = "en"):
        super().__init__(name, lang)
        self.patterns = check_texts(patterns, "patterns")
        flags = re.IGNORECASE if ignore_case else 0
        compiled = []
        for p in self.patterns:
            try:
                compiled.append(re.compile(p, flags))
            except re.error as exc:
                raise ConfigError("patterns", f"{p!r} is not a valid regular expression "
                                              f"({exc})") from None
            if compiled[-1].search("") is not None:
                raise ConfigError("patterns", f"{p!r} matches the empty text; write what "
                                              f"it must find (e.g. x+, not x*)")
            if _only_empty(compiled[-1]):
                raise ConfigError("patterns", f"{p!r} matches only the empty text (a "
                                              f"position, not characters), so it never "
                                              f"finds anything")
        self.compiled = tuple(compiled)
        self.ignore_case = bool(ignore_case)

    def parameters(self) -> dict[str, Any]:
        return {"patterns": list(self.patterns), "ignore_case": self.ignore_case}

    def matches(self, text: str) -> list[tuple[str, re.Match[str]]]:
        """(pattern, its first match holding a character) of each pattern found in
        ``text``, by position: empty matches are no offence."""
        norm = unicodedata.normalize("NFKC", text)
        found = [(p, m) for p, c in zip(self.patterns, self.compiled)
                 if (m := _first_match(c, norm)) is not None]
        return sorted(found, key=lambda pm: pm[1].start())

    def found(self, text: str) -> list[str]:
        """The texts the patterns matched (each pattern's first match), by position."""
        return [m.group(0) for _, m in self.matches(text)]

    def first_offence(self, text: str) -> float | None:
        found = self.matches(text)
        return (None if not found else
                share_before(found[0][1].start(), unicodedata.normalize("NFKC", text)))

    @property
    def description(self) -> str:
        return say(self.lang, "patterns.any_case" if self.ignore_case else "patterns",
                   items=listing(self.lang, self.patterns))

    def broken(self, text: str) -> list[str]:
        return [say(self.lang, "patterns.broken", item=p, found=quoted(self.lang, m.group(0)))
                for p, m in self.matches(text)]


class PhrasesRule(_FoundRule):
    """Forbidden phrases: each a substring anywhere (after NFKC, case folding, white
    space made single spaces and dropped next to Japanese), in any script."""

    key, texts_field, whole_words = "forbidden_phrases", "phrases", False

    def __init__(self, phrases: Iterable[str], name: str = "forbidden-phrases", *,
                 lang: str = "en"):
        super().__init__(phrases, name, lang)
        self.phrases = self.matcher.terms

    @property
    def description(self) -> str:
        return say(self.lang, "phrases", items=listing(self.lang, self.phrases, quote=True))

    def broken(self, text: str) -> list[str]:
        return [say(self.lang, "phrases.broken", item=quoted(self.lang, p))
                for p in dict.fromkeys(self.found(text))]


class RequiredPhrasesRule(TextRule):
    """Required phrases (substrings, matched as PhrasesRule does): ``need="all"`` (each
    must occur, the default) or ``"any"`` (at least one). A partial answer is worth +1
    once the requirement is met and 0 while it is not (the rest of the answer may still
    meet it); an answer breaks the rule while it is not met, and as a final answer
    (``final_value``) it is then worth −1."""

    key = "required_phrases"
    NEEDS = ("all", "any")

    def __init__(self, phrases: Iterable[str], *, need: str = "all",
                 name: str = "required-phrases", lang: str = "en"):
        super().__init__(name, lang)
        if need not in self.NEEDS:
            raise ConfigError("need", f"must be one of {list(self.NEEDS)}, got {need!r}")
        self.need = need
        self.matcher = TermMatcher(check_texts(phrases, "phrases"), whole_words=False)
        self.phrases = self.matcher.terms

    def parameters(self) -> dict[str, Any]:
        return {"phrases": list(self.phrases), "need": self.need}

    def missing(self, text: str) -> list[str]:
        """The phrases ``text`` lacks (as given)."""
        return self.matcher.missing(text)

    def met(self, text: str) -> bool:
        """Whether ``text`` holds each phrase ("all") or one of them ("any")."""
        absent = len(self.missing(text))
        return absent == 0 if self.need == "all" else absent < len(self.phrases)

    def value(self, text: str) -> float:
        return 1.0 if self.met(text) else 0.0

    def final_value(self, text: str) -> float:
        return 1.0 if self.met(text) else -1.0

    def violated(self, text: str) -> bool:
        return not self.met(text)

    @property
    def description(self) -> str:
        return say(self.lang, f"required.{self.need}",
                   items=listing(self.lang, self.phrases, quote=True))

    def broken(self, text: str) -> list[str]:
        if self.met(text):
            return []
        if self.need == "any":
            return [say(self.lang, "required.none",
                        items=listing(self.lang, self.phrases, quote=True))]
        return [say(self.lang, "required.broken", item=quoted(self.lang, p))
                for p in self.missing(text)]


class _CharRule(TextRule):
    """A rule broken by single characters: ``offending(c)`` says which."""

    text_key = ""
    """Its lines' key in ``rule_texts.TEXTS``."""
    default_name = ""
    """Its name when none is given."""

    def __init__(self, name: str | None = None, *, lang: str = "en"):
        super().__init__(name or self.default_name, lang)

    def offending(self, char: str) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def first_index(self, text: str) -> int | None:
        return next((i for i, c in enumerate(text) if self.offending(c)), None)

    def first_offence(self, text: str) -> float | None:
        i = self.first_index(text)
        return None if i is None else share_before(i, text)

    @property
    def description(self) -> str:
        return say(self.lang, self.text_key)

    def broken(self, text: str) -> list[str]:
        i = self.first_index(text)
        return [] if i is None else [say(self.lang, f"{self.text_key}.broken",
                                         item=quoted(self.lang, text[i]))]


class LowercaseRule(_CharRule):
    """No uppercase letter (any script with case; Japanese has none)."""

    key, text_key, default_name = "lowercase", "lowercase", "lowercase"

    def offending(self, char: str) -> bool:
        return char.isupper()


class AllCapitalsRule(_CharRule):
    """No lowercase letter; letters of scripts without case (Japanese) are ignored."""

    key, text_key, default_name = "all_capitals", "capitals", "all-capitals"

    def offending(self, char: str) -> bool:
        return char.islower()


class NoCommasRule(_CharRule):
    """No comma: "," and the Japanese "、", with their other widths (``COMMAS``)."""

    key, text_key, default_name = "no_commas", "commas", "no-commas"

    def offending(self, char: str) -> bool:
        return char in COMMAS


class LetterLimitRule(TextRule):
    """A letter at most ``at_most`` times, in any case and width ("E", "e" and "ｅ" all
    count); the offence is its (at_most + 1)-th occurrence."""

    key = "letter_max"

    def __init__(self, letter: str, at_most: int, name: str | None = None, *,
                 lang: str = "en"):
        if not isinstance(letter, str) or len(fold_char(letter)) != 1 \
                or not fold_char(letter).isalpha():
            raise ConfigError("letter", f"must be a single letter, got {letter!r}")
        if not isinstance(at_most, int) or isinstance(at_most, bool) or at_most < 0:
            raise ConfigError("at_most", f"must be an integer >= 0, got {at_most!r}")
        super().__init__(name or f"letter-max:{letter}", lang)
        self.letter = fold_char(letter)
        self.at_most = at_most

    def parameters(self) -> dict[str, Any]:
        return {"letter": self.letter, "at_most": self.at_most}

    def positions(self, text: str) -> list[int]:
        """Indexes of the letter in ``text``."""
        return [i for i, c in enumerate(text) if fold_char(c) == self.letter]

    def first_offence(self, text: str) -> float | None:
        at = self.positions(text)
        return None if len(at) <= self.at_most else share_before(at[self.at_most], text)

    @property
    def description(self) -> str:
        return say(self.lang, "letter", item=quoted(self.lang, self.letter),
                   at_most=self.at_most)

    def broken(self, text: str) -> list[str]:
        count = len(self.positions(text))
        if count <= self.at_most:
            return []
        return [say(self.lang, "letter.broken", item=quoted(self.lang, self.letter),
                    count=count, at_most=self.at_most)]


class AllOfRules(Rule):
    """Several rules at once: the value is the lowest of theirs, the text breaks the
    combination when it breaks any, and ``broken`` names each broken rule."""

    key = "all_of"

    def __init__(self, rules: Sequence[Rule], name: str = "all-of"):
        self.rules = tuple(rules)
        if not self.rules:
            raise ConfigError("rules", "must hold at least one rule")
        for r in self.rules:
            if not all(callable(getattr(r, m, None)) for m in ("value", "violated")):
                raise ConfigError("rules", f"must hold rules (value/violated), got {r!r}")
        self.name = name

    def value(self, text: str) -> float:
        return min(r.value(text) for r in self.rules)

    def final_value(self, text: str) -> float:
        """The lowest of the members' values of ``text`` as a final answer."""
        return min(getattr(r, "final_value", r.value)(text) for r in self.rules)

    def violated(self, text: str) -> bool:
        return any(r.violated(text) for r in self.rules)

    def broken(self, text: str) -> list[str]:
        """What ``text`` broke, one line per offence, in the rules' order (a member
        without ``broken`` is named by its ``name``)."""
        out: list[str] = []
        for r in self.rules:
            if hasattr(r, "broken"):
                out.extend(r.broken(text))
            elif r.violated(text):
                out.append(r.name)
        return out

    @property
    def descriptions(self) -> list[str]:
        """Each member's description (its name when it has none)."""
        return [getattr(r, "description", r.name) for r in self.rules]
