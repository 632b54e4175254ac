"""Finding terms and phrases in an answer, in any script (the text rules' matching).

Both the answer and what is looked for are normalised the same way (:func:`normalise`):
Unicode NFKC (full-width "Ｇｏｏｇｌｅ" reads as "Google", half-width katakana "ｸﾞｰｸﾞﾙ"
as "グーグル"), case folded, runs of white space made one space, and white space next
to a Japanese character (kanji, hiragana, katakana, full-width punctuation) removed:
Japanese has no spaces between words, so "私は AI として" reads as "私はaiとして" and
"グー グル" as "グーグル" (spaces between Latin words stay). Then:

- a term written only in Latin script ("Go", "Acme Corp", "C3PO", "Müller", "café":
  ASCII and the accented Latin letters) matches as whole words: not inside a longer
  Latin word ("Go" is not in "Google", "café" not in "cafés"), but next to anything
  else ("Google" is in "Googleで検索", in "(Google)" and in "Google's");
- any other term (Japanese, or mixed) matches as a substring anywhere ("グーグル" is in
  "検索はグーグルが一番です"): Japanese has no spaces between words.

Positions in the normalised text are close to, not exactly, those in the answer (NFKC
and case folding may change a character's length); the rules only need the share of
the text before a match, and that share is taken in the normalised text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Match", "TermMatcher", "fold_char", "is_latin_term", "normalise",
           "share_before"]

WORD_CHARS = "0-9a-z\u00c0-\u024f"
"""What a whole-word match must not touch (after case folding): ASCII letters and digits
and the accented Latin letters."""
LATIN = "\u0000-\u007f\u00c0-\u024f"
"""The characters of a term matched as whole words: ASCII and the accented Latin
letters."""
CJK = ("\u3000-\u303f"  # CJK symbols and punctuation (、。「」)
       "\u3040-\u30ff"  # hiragana, katakana (ー, ・)
       "\u31f0-\u31ff"  # katakana extensions
       "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kanji
       "\uff00-\uffef"  # full-width and half-width forms NFKC keeps
       "\U00020000-\U0003134f")  # rarer kanji
"""Japanese characters: white space next to one is dropped (:func:`normalise`)."""
_SPACES = re.compile(r"\s+")
_SPACE_BY_CJK = re.compile(rf" (?=[{CJK}])|(?<=[{CJK}]) ")
_LATIN_TERM = re.compile(f"[{LATIN}]+")


def normalise(text: str) -> str:
    """``text`` in NFKC, case folded, with every run of white space one space and the
    space next to a Japanese character (``CJK``) removed."""
    spaced = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE_BY_CJK.sub("", spaced)


def fold_char(char: str) -> str:
    """One character as :func:`normalise` reads it ("Ｅ" -> "e"; may be longer than one)."""
    return unicodedata.normalize("NFKC", char).casefold()


def is_latin_term(term: str) -> bool:
    """Whether a normalised term is matched as whole words: only ASCII characters and
    accented Latin letters (``LATIN``)."""
    return _LATIN_TERM.fullmatch(term) is not None


def share_before(start: int, text: str) -> float:
    """The share of ``text`` before index ``start``, in [0, 1) (0 for an empty text)."""
    return start / len(text) if text else 0.0


@dataclass(frozen=True)
class Match:
    """One occurrence of a term in a normalised text."""

    term: str
    """The term as it was given (its original spelling)."""
    start: int
    """Index of its first character in the normalised text."""
    share: float
    """The share of the normalised text before it, in [0, 1)."""


def _piece(term: str, whole_words: bool) -> str:
    """The regular expression of one normalised term."""
    body = re.escape(term)
    if not whole_words or not is_latin_term(term):
        return body
    left = rf"(?<![{WORD_CHARS}])" if re.match(rf"[{WORD_CHARS}]", term) else ""
    right = rf"(?![{WORD_CHARS}])" if re.search(rf"[{WORD_CHARS}]\Z", term) else ""
    return left + body + right


class TermMatcher:
    """Finds any of ``terms`` in a text as described above (:func:`normalise` applied to
    both). Terms that normalise alike are one term (the first spelling is kept).
    ``whole_words=False``: every term matches as a substring anywhere (phrases)."""

    def __init__(self, terms: Iterable[str], *, whole_words: bool = True):
        self.by_form: dict[str, str] = {}  # normalised form -> the term as given
        for term in terms:
            form = normalise(term).strip()
            if form:
                self.by_form.setdefault(form, term)
        if not self.by_form:
            raise ValueError("no term to look for")
        forms = sorted(self.by_form, key=len, reverse=True)  # the longest match wins
        self.pattern = re.compile("|".join(f"({_piece(f, whole_words)})" for f in forms))
        self._forms = forms
        self._each = {f: re.compile(_piece(f, whole_words)) for f in forms}  # one term alone

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms, as given, one per normalised form."""
        return tuple(self.by_form.values())

    def _match(self, m: re.Match[str], norm: str) -> Match:
        return Match(self.by_form[self._forms[m.lastindex - 1]], m.start(),
                     share_before(m.start(), norm))

    def first(self, text: str) -> Match | None:
        """The first occurrence of any term in ``text`` (None: none occurs)."""
        norm = normalise(text)
        m = self.pattern.search(norm)
        return None if m is None else self._match(m, norm)

    def all(self, text: str) -> list[Match]:
        """Every occurrence, in order (matches do not overlap)."""
        norm = normalise(text)
        return [self._match(m, norm) for m in self.pattern.finditer(norm)]

    def missing(self, text: str) -> list[str]:
        """The terms that do not occur in ``text``, as given, in the given order (each
        looked for alone, so "Acme" is found inside "Acme Corp")."""
        norm = normalise(text)
        return [t for f, t in self.by_form.items() if self._each[f].search(norm) is None]
