"""What the text rules say about themselves, in English and Japanese.

Each rule describes itself in one line ("Never use the terms: Google, Bing") and names
what an answer broke ("banned term: Google"), in the language it was built with. The
texts are data here so a language is added in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from rainlm.errors import ConfigError

__all__ = ["LANGS", "check_lang", "listing", "quoted", "say"]

LANGS = ("en", "ja")
"""The languages of rules, policies and their reports."""

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "terms": "Never use the terms: {items}",
        "terms.broken": "banned term: {item}",
        "patterns": "Never write text matching: {items}",
        "patterns.any_case": "Never write text matching, in any case: {items}",
        "patterns.broken": "banned pattern {item}: {found}",
        "phrases": "Never say: {items}",
        "phrases.broken": "forbidden phrase: {item}",
        "required.all": "Always include each of: {items}",
        "required.any": "Always include at least one of: {items}",
        "required.broken": "missing required phrase: {item}",
        "required.none": "none of the required phrases: {items}",
        "lowercase": "Write no capital letters",
        "lowercase.broken": "capital letter: {item}",
        "capitals": "Write letters only as capitals",
        "capitals.broken": "lowercase letter: {item}",
        "commas": "Use no commas",
        "commas.broken": "comma: {item}",
        "letter": "Use the letter {item} at most {at_most} times (any case)",
        "letter.broken": "letter {item} used {count} times (at most {at_most})",
    },
    "ja": {
        "terms": "次の語を使わない: {items}",
        "terms.broken": "禁止語: {item}",
        "patterns": "次のパターンに一致する文字列を書かない: {items}",
        "patterns.any_case": "次のパターンに大文字・小文字を問わず一致する文字列を書かない: {items}",
        "patterns.broken": "禁止パターン {item}: {found}",
        "phrases": "次の表現を使わない: {items}",
        "phrases.broken": "禁止表現: {item}",
        "required.all": "次の表現をすべて必ず含める: {items}",
        "required.any": "次の表現のどれかを必ず含める: {items}",
        "required.broken": "必須表現がない: {item}",
        "required.none": "必須表現がどれもない: {items}",
        "lowercase": "英字の大文字を使わない",
        "lowercase.broken": "大文字: {item}",
        "capitals": "英字はすべて大文字で書く",
        "capitals.broken": "小文字: {item}",
        "commas": "読点やカンマ（、，,）を使わない",
        "commas.broken": "読点・カンマ: {item}",
        "letter": "文字{item}は{at_most}回まで（大文字・小文字を問わない）",
        "letter.broken": "文字{item}が{count}回（上限{at_most}回）",
    },
}
"""Every line a rule says, by language and key."""

_QUOTES = {"en": ("\"", "\""), "ja": ("「", "」")}
_SEPARATORS = {"en": ", ", "ja": "、"}


def check_lang(lang: object, field: str = "lang") -> str:
    """``lang`` if it is one of LANGS, else ConfigError naming ``field``."""
    if lang not in LANGS:
        raise ConfigError(field, f"must be one of {list(LANGS)}, got {lang!r}")
    return lang  # type: ignore[return-value]


def quoted(lang: str, text: str) -> str:
    """``text`` in the language's quotation marks ("x" or 「x」)."""
    left, right = _QUOTES[lang]
    return f"{left}{text}{right}"


def listing(lang: str, items: Iterable[str], *, quote: bool = False) -> str:
    """Items joined the language's way ("a, b" or "a、b"), each quoted if asked."""
    return _SEPARATORS[lang].join(quoted(lang, i) if quote else i for i in items)


def say(lang: str, key: str, **values: object) -> str:
    """The line ``key`` in ``lang`` with ``values`` filled in."""
    return TEXTS[lang][key].format(**values)
