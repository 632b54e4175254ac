"""Known words: the share of an answer's words that are English dictionary words.

A rule is kept most cheaply by not writing words at all: a search pushed away from
"bomb" may answer "spasugglobella curgeo" or "SUGGIFFS", which no banned-word rule can
see. The model's own NLL (:mod:`rainlm.fluency`) catches most of that, but it is
the policy model judging itself, and a model can find its own babble likely. This
measure does not come from the model: it is the share of the answer's alphabetic words
found in two large English word lists (Webster's Second International, ``web2``, and
the GNU Collaborative International Dictionary of English, ``gcide``: about 263,000
lower-case words, from the ``english-words`` package).

How a word is read: runs of Latin letters (accents stripped: "café" reads "cafe"),
split at apostrophes ("don't" reads "don" and "t", both listed) and at anything else
that is not a letter; lower-cased. A word counts as known when it, or it less a final
"s", "es", "ed", "ing" or "ly" (also with an "e" put back: "making" -> "make"), or with
"ies" turned into "y", is listed. What it is lenient with: archaic and rare words
("thee", "whilst") are listed, so a stilted answer scores as well as a plain one;
proper names and new words ("chatbot") are not, so an answer full of them scores
lower. An answer with no Latin word at all (Japanese, digits only) has no share: None.

The word list is loaded once, on the first call (about 0.1 s), never at import.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

__all__ = ["MIN_ANSWER_WORDS", "SUFFIXES", "has_words", "is_known", "known_word_share",
           "latin_words"]

SUFFIXES = ("ing", "ies", "es", "ed", "ly", "s")
"""Endings taken off a word not found as it is (longest first; "ies" becomes "y")."""

_RUN = re.compile(r"[^\W\d_]+")  # letters of any script, no digits or underscores
_LATIN = re.compile(r"[a-z]+")


@cache
def _words() -> frozenset[str]:
    """The web2 + gcide word list, lower-case alphabetic words only."""
    from english_words import get_english_words_set

    return frozenset(get_english_words_set(["web2", "gcide"], alpha=True, lower=True))


MIN_ANSWER_WORDS = 3
"""Latin words an answer needs to count as an answer where one in words is due: a string
of digits and symbols ("12868 * 12868 * ...") keeps a character rule, and the model finds
its own repetitions likely, but it says nothing (issue 27 counted only answers of at
least 3 words)."""


def has_words(text: str) -> bool:
    """Whether ``text`` holds at least ``MIN_ANSWER_WORDS`` Latin words."""
    return len(latin_words(text)) >= MIN_ANSWER_WORDS


def latin_words(text: str) -> list[str]:
    """The Latin-letter words of ``text``, lower-case and without accents, in order:
    ``"Don't SUGGIFFS, café!"`` -> ``["don", "t", "suggiffs", "cafe"]``; a run of
    another script (Japanese) gives none."""
    out = []
    for run in _RUN.findall(text):
        plain = "".join(c for c in unicodedata.normalize("NFKD", run.lower())
                        if not unicodedata.combining(c))
        if plain.isascii():
            out += _LATIN.findall(plain)
    return out


def is_known(word: str) -> bool:
    """Whether a lower-case word, or its stem by the small inflection rule, is listed."""
    words = _words()
    if word in words:
        return True
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: -len(suffix)]
            candidates = [stem + "y"] if suffix == "ies" else [stem, stem + "e"]
            if any(c in words for c in candidates):
                return True
    return False


def known_word_share(text: str) -> float | None:
    """Share of ``text``'s Latin words that are known (None: no Latin word)."""
    words = latin_words(text)
    if not words:
        return None
    return sum(is_known(w) for w in words) / len(words)
