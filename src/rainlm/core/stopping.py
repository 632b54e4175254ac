"""When an answer (or a branch of it) is finished (RAIN_SPEC §2, §3.3)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence


def contains_eos(tokens: Sequence[int], eos_ids: Collection[int]) -> bool:
    return any(t in eos_ids for t in tokens)


def hits_stop_string(text: str, stop_strings: Sequence[str]) -> bool:
    """The answer starts a new dialogue turn (or any user stop string appears)."""
    return any(s in text for s in stop_strings)


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """Text up to the first stop string (the stop string itself removed)."""
    cut = len(text)
    for s in stop_strings:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def ends_clause(text: str, clause_end_chars: Sequence[str]) -> bool:
    """The text ends a clause (``, . ? : ;`` or newline by default, §3.2)."""
    return any(text.endswith(c) for c in clause_end_chars)


def finish_reason(answer: Sequence[int], *, eos_ids: Collection[int], max_new_tokens: int,
                  stop_strings: Sequence[str],
                  detokenize: Callable[[Sequence[int]], str] | None = None,
                  text: str | None = None) -> str | None:
    """The one finish rule (§3.3) of every answer, searched, imagined or decoded: why
    ``answer`` is finished, or None if it is not. "eos" (an end-of-sequence token in
    it), "length" (the limit) or "stop_string" (a new turn begins). The text is
    ``text`` when given, else ``detokenize(answer)``, read only when needed."""
    if contains_eos(answer, eos_ids):
        return "eos"
    if len(answer) >= max_new_tokens:
        return "length"
    if stop_strings:
        if text is None:
            text = detokenize(answer)
        if hits_stop_string(text, stop_strings):
            return "stop_string"
    return None


def is_terminal(answer_tokens: Sequence[int], text: str, *, eos_ids: Collection[int],
                max_new_tokens: int, stop_strings: Sequence[str]) -> bool:
    """A leaf that is not expanded: a finished answer (``finish_reason``)."""
    return finish_reason(answer_tokens, eos_ids=eos_ids, max_new_tokens=max_new_tokens,
                         stop_strings=stop_strings, text=text) is not None
