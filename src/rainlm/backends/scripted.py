"""A deterministic backend for tests and examples: next-token laws from a table or a function.

The tokenizer knows a small vocabulary of strings (longest match first); any other
character becomes a single-character token outside the vocabulary (prompt only; such
tokens are never predicted). ``render_prompt`` ends with the ``<assistant>`` marker;
everything after the last marker is the answer, which the script is keyed on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from rainlm.backends.base import BackendCounters, Capabilities
from rainlm.backends.distribution import TokenDistribution
from rainlm.errors import ConfigError

ASSISTANT = "<assistant>"
USER = "<user>"
SYSTEM = "<system>"
EOS = "<eos>"

# A script maps the answer so far (token strings) to next-token probabilities.
Script = Callable[[tuple[str, ...]], Mapping[str, float]]


class ScriptedBackend:
    """A model whose next-token distribution is written down by the test author."""

    def __init__(self, vocab: Sequence[str],
                 script: Script | Mapping[tuple[str, ...], Mapping[str, float]], *,
                 default: Mapping[str, float] | None = None, name: str = "scripted"):
        specials = [EOS, ASSISTANT, USER, SYSTEM]
        self.vocab: list[str] = specials + [v for v in vocab if v not in specials]
        self.index = {tok: i for i, tok in enumerate(self.vocab)}
        self.name = name
        self.capabilities = Capabilities(full_distribution=True)
        self.eos_token_ids = frozenset({self.index[EOS]})
        self.bos_ids: tuple[int, ...] = ()
        self.counters = BackendCounters()
        self._script = script
        self._default = default or {EOS: 1.0}
        self._by_length = sorted((t for t in self.vocab if t not in specials), key=len, reverse=True)
        self._specials = set(specials)

    # ----------------------------------------------------------------- tokenizer
    def tokenize(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            for tok in self._by_length:
                if text.startswith(tok, i):
                    ids.append(self.index[tok])
                    i += len(tok)
                    break
            else:
                ids.append(len(self.vocab) + ord(text[i]))  # out-of-vocabulary character
                i += 1
        return ids

    def token_str(self, token_id: int) -> str:
        if token_id < len(self.vocab):
            return self.vocab[token_id]
        return chr(token_id - len(self.vocab))

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return "".join(self.token_str(t) for t in token_ids
                       if not (t < len(self.vocab) and self.vocab[t] in self._specials))

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        ids: list[int] = []
        for m in messages:
            marker = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}[m["role"]]
            ids.append(self.index[marker])
            ids.extend(self.tokenize(m["content"]))
        ids.append(self.index[ASSISTANT])
        return ids

    # --------------------------------------------------------------------- model
    def answer_of(self, context: Sequence[int]) -> tuple[str, ...]:
        marker = self.index[ASSISTANT]
        last = max((i for i, t in enumerate(context) if t == marker), default=-1)
        return tuple(self.token_str(t) for t in context[last + 1:])

    def probabilities(self, answer: tuple[str, ...]) -> Mapping[str, float]:
        if callable(self._script):
            return self._script(answer)
        return self._script.get(answer, self._default)

    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        self.counters.forward_calls += 1
        self.counters.batch_sizes.append(len(contexts))
        out = []
        for context in contexts:
            self.counters.prefill_tokens += len(context)
            probs = np.zeros(len(self.vocab), dtype=np.float64)  # [V]
            for tok, p in self.probabilities(self.answer_of(context)).items():
                if tok not in self.index:
                    raise ConfigError("script", f"token {tok!r} is not in the scripted vocabulary")
                probs[self.index[tok]] += p
            if probs.sum() <= 0:
                raise ConfigError("script", f"no probability mass after {self.answer_of(context)!r}")
            with np.errstate(divide="ignore"):
                out.append(TokenDistribution(np.log(probs / probs.sum())))  # [V], -inf for 0
        return out
