"""Map the token STRINGS an HTTP engine puts in ``top_logprobs`` back to token ids.

OpenAI-style completions report ``top_logprobs`` as ``{token_text: logprob}``. The
search works on ids, so each key must become an id again:

1. ``"token_id:123"`` (vLLM with ``return_tokens_as_token_ids``, which this backend
   always asks for): exact, no loss.
2. Otherwise a reverse vocabulary built once from the local tokenizer: the text of each
   id decoded alone (``decode([id])``, special tokens kept) -> id. Costs ~1 s once for a
   50k vocabulary.

   * Collisions (several ids with the same text, e.g. a merged token and a rarely used
     duplicate): the id the tokenizer itself produces for that text (``encode(s) ==
     [id]``) wins, else the smallest id. Engines key their dict by text too, so the
     probability of the colliding twin is lost either way (it is rarely in the top-k).
   * Byte pieces (ids whose text alone is not valid UTF-8, shown as U+FFFD by the
     tokenizer; llama-cpp-python drops the bad bytes and reports ``""`` or a fragment):
     not mapped; their probability mass is dropped and counted in ``unmapped``. For
     English text these are almost never in the top-k.
   * ``""`` (what llama-cpp-python reports for special tokens such as ``<|im_end|>``,
     which it detokenizes with ``special=False``) maps to the primary end-of-turn id.
     Caveat: llama-cpp-python builds the dict in descending order, so if two
     ``""``-tokens are in the top-k the value kept is the LOWER one: the end-of-turn
     probability can then be underestimated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["TokenStringMap"]

_ID_PREFIX = "token_id:"


def named_by_id(names: Iterable[str]) -> bool:
    """Whether an engine named these tokens by id (``"token_id:123"``), none missing."""
    names = list(names)
    return bool(names) and all(n.startswith(_ID_PREFIX) and n[len(_ID_PREFIX):].isdigit()
                               for n in names)


class TokenStringMap:
    """Reverse vocabulary of a Hugging Face tokenizer: token text -> id."""

    def __init__(self, tokenizer, *, end_of_turn_id: int | None):
        n = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                       clean_up_tokenization_spaces=False)
        owners: dict[str, list[int]] = {}
        for i, s in enumerate(texts):
            if "\ufffd" in s or s == "":
                continue  # byte piece (or an empty piece): not recoverable from text
            owners.setdefault(s, []).append(i)
        self._ids: dict[str, int] = {}
        self.collisions = 0  # texts shared by several ids
        for s, ids in owners.items():
            if len(ids) > 1:
                self.collisions += 1
                canon = tokenizer.encode(s, add_special_tokens=False)
                ids = [canon[0]] if len(canon) == 1 and canon[0] in ids else sorted(ids)
            self._ids[s] = ids[0]
        if end_of_turn_id is not None:
            self._ids[""] = int(end_of_turn_id)

    def id_of(self, text: str) -> int | None:
        """The id of one reported token string (None if it cannot be mapped)."""
        if text.startswith(_ID_PREFIX):
            rest = text[len(_ID_PREFIX):]
            if rest.isdigit():
                return int(rest)
        return self._ids.get(text)

    def convert(self, top: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray, int]:
        """``{text: logprob}`` -> (ids [k'] int64, logprobs [k'] float64, unmapped count).

        Sorted by descending log-prob (ties: smaller id first). Two strings mapping to one
        id keep the larger log-prob.
        """
        best: dict[int, float] = {}
        unmapped = 0
        for text, lp in top.items():
            tid = self.id_of(text)
            if tid is None or lp is None:
                unmapped += 1
                continue
            lp = float(lp)
            if tid not in best or lp > best[tid]:
                best[tid] = lp
        ids = np.fromiter(best.keys(), dtype=np.int64, count=len(best))
        lps = np.fromiter(best.values(), dtype=np.float64, count=len(best))
        order = np.lexsort((ids, -lps))
        return ids[order], lps[order], unmapped
