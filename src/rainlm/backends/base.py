"""The backend interface that the search, the judge and the baseline talk to.

A backend turns token-id contexts into next-token distributions; all sampling and
search decisions happen in ``rainlm.core`` with a seeded generator, so the same seed
gives the same tree on every backend that returns the same distributions.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from rainlm.backends.distribution import TokenDistribution

__all__ = ["Backend", "BackendCounters", "Capabilities", "TokenDistribution", "clear_prefix_cache",
           "model_name", "set_cache_budget", "stop_strings_of", "top_k_key"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the search raises CapabilityError when it needs more."""

    full_distribution: bool
    """next_logprobs returns the whole vocabulary (in-process backends) rather than top-k,
    whatever ``top_k`` it is given (so calls with different ``top_k`` may share one call)."""
    max_top_logprobs: int | None = None
    """Largest top-k a sparse backend can return (None: unlimited / dense)."""
    prefix_cache: bool = False
    """Keys/values of previously seen prefixes are reused, so extending a context is cheap."""
    batched: bool = False
    """Several contexts in one next_logprobs call run in one forward pass."""
    chat_template: bool = False
    """render_prompt uses the model's own chat template."""


@dataclass
class BackendCounters:
    """Work a backend has done since it was built (read by result.stats as deltas)."""

    forward_calls: int = 0
    """Model forward passes (one batched pass counts once)."""
    prefill_tokens: int = 0
    """Tokens encoded in passes that processed more than one new token per sequence."""
    decode_tokens: int = 0
    """Tokens encoded one at a time on top of a cached prefix."""
    cache_hits: int = 0
    """Contexts answered entirely from the cache (no forward pass)."""
    cache_misses: int = 0
    """Contexts that needed a forward pass (partially cached or not at all)."""
    cached_tokens_reused: int = 0
    """Prefix tokens whose keys/values came from the cache instead of being re-encoded."""
    batch_sizes: list[int] = field(default_factory=list)
    """Batch size of each forward pass."""

    def snapshot(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "batch_sizes"}
        d["batches"] = len(self.batch_sizes)
        d["batched_rows"] = sum(self.batch_sizes)
        return d


@runtime_checkable
class Backend(Protocol):
    """A language model as the search sees it.

    Optional hooks, left out of the protocol's members so that ``isinstance(x, Backend)``
    does not require them; read them only through the helpers at the end of this module:

    * ``default_stop_strings: tuple[str, ...]``: strings the model's answers are cut at
      besides the config's; read with ``stop_strings_of(backend)`` (``()`` when absent).
    * ``clear_cache() -> None``: forget every cached prefix so the next contexts are
      encoded from scratch; called through ``clear_prefix_cache(backend)`` (a backend
      without a prefix cache leaves it out).
    * ``cache_budget_bytes: int``: the prefix cache's memory budget, which may be set
      (the cache evicts down to it on its next call that encodes something); set
      through ``set_cache_budget(backend, mb)``.
    * ``takes_concurrent_calls: bool``: ``next_logprobs`` and ``decode`` may be called
      from several threads at once (an engine over HTTP, which batches concurrent
      requests itself); read with ``takes_concurrent_calls(backend)`` (False when
      absent: an in-process model runs one call at a time).
    """

    name: str
    """Human-readable model name (recorded in results and traces)."""
    capabilities: Capabilities
    eos_token_ids: frozenset[int]
    """Token ids that end the answer (end of turn, end of sequence)."""
    bos_ids: tuple[int, ...]
    """What the model's tokenizer puts before a plain text (its BOS), or ``()``: prompts
    the backend does not render itself (the judge's) start with these."""
    counters: BackendCounters

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added."""
        ...

    def detokenize(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``, special tokens skipped."""
        ...

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of a conversation, ending where the assistant's answer begins."""
        ...

    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        """Next-token distribution after each context (one per context, same order).

        ``top_k`` is a hint: a dense backend (``full_distribution``) ignores it; a sparse
        backend returns at most that many (and raises CapabilityError above its maximum).
        """
        ...


def model_name(backend: object) -> str:
    """The backend's ``name`` as results and traces record it; "model" for an object
    without one (a user's own backend may leave it out)."""
    return str(getattr(backend, "name", "model"))


def stop_strings_of(backend: object) -> tuple[str, ...]:
    """The backend's optional ``default_stop_strings`` as a tuple; ``()`` for a backend
    without that hook."""
    return tuple(getattr(backend, "default_stop_strings", None) or ())


def takes_concurrent_calls(backend: object) -> bool:
    """Whether the backend's model calls may run from several threads at once (its
    optional ``takes_concurrent_calls``; False when absent)."""
    return getattr(backend, "takes_concurrent_calls", False) is True


def top_k_key(backend: Backend, top_k: int | None) -> int | None:
    """What tells apart two ``next_logprobs`` calls' ``top_k`` on ``backend``: nothing on a
    dense backend, which ignores it (so calls with different ``top_k`` may share one
    backend call), else ``top_k`` itself."""
    return None if backend.capabilities.full_distribution else top_k


def set_cache_budget(backend: object, mb: float) -> bool:
    """Set the backend's optional ``cache_budget_bytes`` to ``mb`` MiB; False (nothing
    done) for a backend without a budgeted prefix cache."""
    budget = getattr(backend, "cache_budget_bytes", None)
    if not isinstance(budget, numbers.Integral) or isinstance(budget, bool):
        return False
    backend.cache_budget_bytes = int(mb * 2**20)  # type: ignore[attr-defined]
    return True


def clear_prefix_cache(backend: object) -> bool:
    """Call the backend's optional ``clear_cache()`` hook; False (nothing done) for a
    backend without one."""
    clear = getattr(backend, "clear_cache", None)
    if not callable(clear):
        return False
    clear()
    return True
