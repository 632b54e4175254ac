"""In-process backend over a Hugging Face transformers causal LM, with a prefix KV cache.

``next_logprobs`` is the search's hot path. Every context it has seen is remembered in
a bounded LRU cache keyed by its token tuple:

* an entry holds the last-position log-probabilities ``[V]`` and, for "KV entries",
  the keys/values (a ``DynamicCache``, batch 1) of all its tokens;
* a context equal to a key is answered with no forward pass (a hit);
* otherwise the KV entry sharing the longest prefix with it is cloned (a shallow copy:
  ``DynamicLayer.update`` concatenates into new tensors, never writes in place), cut to
  the common prefix if needed (a slice view, what ``DynamicLayer.crop(-n)`` does), and
  only the rest of the context is forwarded;
* a KV entry that is a strict prefix of exactly one context of the call is extended in
  place and re-keyed (the search's simulation loop adds one token per call); its old key
  keeps its log-probabilities as a small "logits-only" entry;
* contexts that reuse the same entry at the same length are forwarded together: the
  cache is ``batch_repeat_interleave``-d and suffixes are right-padded (causal attention
  never lets a real token see the padding that follows it, so no mask is needed);
* contexts that each extend a *different* whole KV entry by the same number of tokens
  (expansions, parallel simulations, the searches of concurrent server requests) are
  forwarded together on the entries' stacked caches; entries of different lengths are
  right-padded to the longest and the padding masked out (an attention mask and
  explicit position ids: a "ragged" batch, padded at most ~2× the real cache);
* when several new contexts share a long prefix nobody has cached yet (a judge's
  few-shot prompt), that prefix is forwarded once first.

Memory is bounded by ``cache_budget_mb`` (bytes of key/value tensors plus log-probs).
Caches made of anything but plain ``DynamicLayer``s (sliding windows, linear attention)
fall back to fresh forwards with exact-hit caching only.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rainlm.backends.base import BackendCounters, Capabilities, TokenDistribution
from rainlm.backends.chat_template import (END_OF_TURN_NAMES, hf_bos_ids, hf_encode_text,
                                          hf_render_prompt, hf_text_tokenizer)
from rainlm.backends.kv_cache import (cache_nbytes, clone_cache, lcp, plain_layers, ragged_mask,
                                      ragged_row, stack_caches)
from rainlm.errors import ConfigError, ModelNotFoundError

__all__ = ["TransformersBackend"]

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class _Entry:
    """One cached context: last-position log-probs, and maybe keys/values of all tokens."""

    tokens: np.ndarray  # [T] int64, the context
    logprobs: np.ndarray  # [V] float32, read-only, natural log
    cache: Any | None  # DynamicCache with batch 1 and seq T, or None (logits-only)
    nbytes: int


@dataclass
class _Job:
    """Contexts forwarded together on top of one source entry cut at ``keep`` tokens."""

    source: tuple | None  # key of the KV entry reused, or None (forward from scratch)
    keep: int  # tokens of the source reused (the rest is cropped)
    contexts: list[tuple]
    sources: list[tuple] | None = None  # multi-source job: row r extends sources[r] whole
    lengths: list[int] | None = None  # ragged multi-source job: sources' lengths (keep: the
    # longest; the shorter rows' caches are padded to it and the padding masked out)

    def row_keeps(self) -> list[int]:
        """Tokens of each row's context already cached (the rest is forwarded)."""
        return self.lengths if self.lengths is not None else [self.keep] * len(self.contexts)


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{device!r} is not available here (torch "
                                    f"{torch.__version__} sees no CUDA device); use device='auto' "
                                    "or 'cpu'")
    return device


def _resolve_dtype(dtype: str, device: str):
    import torch

    if dtype not in _DTYPES:
        raise ConfigError("dtype", f"must be one of {', '.join(_DTYPES)}; got {dtype!r}.")
    if dtype == "auto":
        cuda_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return getattr(torch, dtype)


class TransformersBackend:
    """A transformers ``AutoModelForCausalLM`` + tokenizer as a rainlm ``Backend``.

    Built from objects the user already has; ``from_pretrained`` loads a local folder,
    a GGUF file or a hub id already in the local cache (never downloads by default).
    """

    def __init__(self, model, tokenizer, *, name: str | None = None, device: str = "auto",
                 cache_budget_mb: float = 512, num_threads: int | None = None,
                 max_batch_tokens: int = 2048, min_shared_prefix: int = 32):
        import torch

        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        if cache_budget_mb < 0:
            raise ConfigError("cache_budget_mb", f"must be >= 0; got {cache_budget_mb}.")
        current = next(model.parameters()).device
        if device == "auto" and current.type != "cpu":
            device = str(current)  # the user already placed it on an accelerator
        self.device = _resolve_device(device)
        if getattr(model, "hf_device_map", None) is None and str(current) != self.device:
            model = model.to(self.device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.text_tokenizer = hf_text_tokenizer(tokenizer)  # control text stays text
        self.name = name or str(getattr(model.config, "_name_or_path", "") or "transformers")
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.capabilities = Capabilities(full_distribution=True, prefix_cache=True,
                                         batched=True, chat_template=has_template)
        self.eos_token_ids = self._find_eos_ids()
        self.bos_ids = tuple(hf_bos_ids(tokenizer))
        self.counters = BackendCounters()
        self.cache_budget_bytes = int(cache_budget_mb * 2**20)
        self.max_batch_tokens = max_batch_tokens
        self.min_shared_prefix = min_shared_prefix
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()  # LRU order, oldest first
        self._kv_keys: dict[tuple, None] = {}  # keys of entries holding keys/values
        self._bytes = 0
        self._kv_reuse = True  # switched off if the model's cache is not plain layers
        self._lock = threading.RLock()
        self._pinned: set[tuple] = set()  # sources used by several jobs of this call
        self._protect: set[tuple] = set()  # sources of this call's jobs

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, *, device: str = "auto",
                        dtype: str = "auto", gguf_file: str | None = None,
                        local_files_only: bool = True, name: str | None = None,
                        **kw) -> TransformersBackend:
        """Load tokenizer and model with transformers (offline unless told otherwise).

        ``kw`` goes to the constructor (``cache_budget_mb``, ``num_threads``, ...).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        resolved = _resolve_device(device)
        torch_dtype = _resolve_dtype(dtype, resolved)
        src = str(path_or_id)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            tok = AutoTokenizer.from_pretrained(src, local_files_only=local_files_only, **extra)
            model = AutoModelForCausalLM.from_pretrained(
                src, dtype=torch_dtype, local_files_only=local_files_only, **extra)
        except OSError as exc:
            raise ModelNotFoundError(
                f"Could not load model {src!r}{' / ' + gguf_file if gguf_file else ''}: "
                f"{exc}. Pass a local model folder (or a .gguf file)."
            ) from exc
        default_name = gguf_file or Path(src.rstrip("/")).name or src
        return cls(model, tok, name=name or default_name, device=resolved, **kw)

    # ---------------------------------------------------------------- text <-> ids
    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` with no special tokens added; a control-token string in
        it (``<|im_end|>``) stays text."""
        return hf_encode_text(self.text_tokenizer, text)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``, special tokens skipped."""
        return self.tokenizer.decode([int(t) for t in token_ids], skip_special_tokens=True)

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of a conversation, ending where the assistant's answer begins.

        Uses the tokenizer's chat template (with its own defaults, e.g. SmolLM's system
        turn); base models without one get a plain ``Human: ...\\n\\nAssistant:`` transcript.
        """
        return hf_render_prompt(self.tokenizer, self.text_tokenizer, messages,
                                use_template=self.capabilities.chat_template)

    def _find_eos_ids(self) -> frozenset[int]:
        """The tokenizer's eos, the generation config's eos and known end-of-turn tokens."""
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        gen = getattr(self.model, "generation_config", None)
        gen_eos = getattr(gen, "eos_token_id", None)
        if gen_eos is not None:
            ids.update(int(i) for i in (gen_eos if isinstance(gen_eos, list) else [gen_eos]))
        vocab = self.tokenizer.get_vocab()
        ids.update(int(vocab[n]) for n in END_OF_TURN_NAMES if n in vocab)
        return frozenset(ids)

    # ---------------------------------------------------------------- the cache
    def clear_cache(self) -> None:
        """Forget every cached context (counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._kv_keys.clear()
            self._bytes = 0

    def cache_info(self) -> dict:
        """Entries, KV entries and approximate bytes held by the prefix cache."""
        with self._lock:
            return {"entries": len(self._entries), "kv_entries": len(self._kv_keys),
                    "bytes": self._bytes, "budget_bytes": self.cache_budget_bytes}

    def _store(self, key: tuple, logprobs: np.ndarray, cache) -> None:
        """Insert (or replace) an entry as most recently used."""
        self._drop(key)
        nbytes = logprobs.nbytes + (cache_nbytes(cache) if cache is not None else 0)
        self._entries[key] = _Entry(np.asarray(key, dtype=np.int64), logprobs, cache, nbytes)
        if cache is not None:
            self._kv_keys[key] = None
        self._bytes += nbytes

    def _drop(self, key: tuple) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.nbytes
            self._kv_keys.pop(key, None)

    def _evict(self, protect: set[tuple] = frozenset()) -> None:
        """Drop least recently used entries until the byte budget holds."""
        for key in list(self._entries):
            if self._bytes <= self.cache_budget_bytes:
                break
            if key not in protect:
                self._drop(key)

    def _best_source(self, ctx: np.ndarray) -> tuple[tuple | None, int]:
        """The KV entry sharing the longest usable prefix with ``ctx``, and that length.

        At least one token of ``ctx`` is always left to forward (its logits are needed).
        Ties go to an entry needing no crop, then to the most recently used one.
        """
        best, best_keep, best_exact = None, 0, False
        limit = ctx.shape[0] - 1
        for key in self._kv_keys:
            entry = self._entries[key]
            keep = min(lcp(entry.tokens, ctx), limit)
            exact = keep == entry.tokens.shape[0]
            if keep > best_keep or (keep == best_keep and keep > 0 and exact >= best_exact):
                best, best_keep, best_exact = key, keep, exact
        return best, best_keep

    # ---------------------------------------------------------------- the hot path
    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        """Dense next-token log-probs ``[V]`` (float32) after each context, same order.

        ``top_k`` is ignored (this backend is dense). Returned arrays are read-only and
        may be shared with the cache.
        """
        import torch

        keys = [tuple(int(t) for t in c) for c in contexts]
        for i, key in enumerate(keys):
            if not key:
                raise ConfigError("contexts", f"every context needs at least one token; "
                                              f"context {i} is empty.")
        with self._lock, torch.inference_mode():
            found: dict[tuple, np.ndarray] = {}
            misses: dict[tuple, None] = {}  # an ordered set
            for key in keys:
                if key in found or key in misses:
                    self.counters.cache_hits += 1  # a repeat within this call
                elif key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key].logprobs
                    self.counters.cache_hits += 1
                else:
                    misses[key] = None
            if misses:
                self._prefill_shared_prefix(list(misses))
                found.update(self._run_jobs(self._plan(list(misses))))
                self._evict()
            return [TokenDistribution(found[key]) for key in keys]

    def _prefill_shared_prefix(self, misses: list[tuple]) -> None:
        """Forward once the prefix common to all ``misses`` when that saves enough work."""
        if len(misses) < 2 or not self._kv_reuse:
            return
        arrays = [np.asarray(m, dtype=np.int64) for m in misses]
        shared = min(a.shape[0] for a in arrays) - 1
        for a in arrays[1:]:
            shared = min(shared, lcp(arrays[0], a))
        if shared < 1:
            return
        prefix = tuple(misses[0][:shared])
        if prefix in self._kv_keys:
            return
        _, keep = self._best_source(arrays[0][:shared])
        if (len(misses) - 1) * (shared - keep) >= self.min_shared_prefix:
            self._run_jobs(self._plan([prefix]), counted=False)

    def _plan(self, misses: list[tuple]) -> list[_Job]:
        """Group contexts by (source entry, kept length), then split each group into
        batches of similar suffix length (padding at most ~1.5x the real tokens)."""
        groups: dict[tuple, list[tuple]] = {}
        for key in misses:
            source, keep = (None, 0)
            if self._kv_reuse:
                source, keep = self._best_source(np.asarray(key, dtype=np.int64))
            groups.setdefault((source, keep), []).append(key)
        jobs = []
        for (source, keep), ctxs in groups.items():
            ctxs.sort(key=len)
            batch: list[tuple] = []
            for ctx in ctxs:
                rows, width = len(batch) + 1, len(ctx) - keep  # sorted: widest last
                real = sum(len(c) - keep for c in batch) + width
                if batch and (rows * width > 1.5 * real + rows
                              or rows * width > self.max_batch_tokens):
                    jobs.append(_Job(source, keep, batch))
                    batch = []
                batch.append(ctx)
            jobs.append(_Job(source, keep, batch))
        return self._merge_single_extensions(jobs)

    def _merge_single_extensions(self, jobs: list[_Job]) -> list[_Job]:
        """Batch one-context jobs that each extend a *different* whole source entry by the
        same number of tokens (the expansion and parallel simulation patterns, and the
        searches of concurrent requests): their caches are stacked along the batch
        dimension and forwarded once instead of once per context. Sources of different
        lengths are padded to the longest and the padding masked out (a ragged job)."""
        buckets: dict[int, list[_Job]] = {}
        rest: list[_Job] = []
        for job in jobs:
            whole = (job.source is not None and len(job.contexts) == 1
                     and self._entries[job.source].tokens.shape[0] == job.keep)
            if whole:
                width = len(job.contexts[0]) - job.keep
                buckets.setdefault(width, []).append(job)
            else:
                rest.append(job)
        for width, group in buckets.items():
            group.sort(key=lambda j: j.keep)  # similar lengths share a batch: less padding
            for part in self._ragged_chunks(group, width):
                keeps = [j.keep for j in part]
                if len(part) == 1:
                    rest.append(part[0])
                else:
                    rest.append(_Job(None, max(keeps), [j.contexts[0] for j in part],
                                     sources=[j.source for j in part],
                                     lengths=None if len(set(keeps)) == 1 else keeps))
        return rest

    def _ragged_chunks(self, group: list[_Job], width: int) -> list[list[_Job]]:
        """``group`` (sorted by source length) cut into batches of at most
        ``max_batch_tokens // width`` rows whose padded cache (rows × the longest source)
        stays within ~2× the real one (padding costs only memory and attention over
        masked keys; a forward pass saved costs the whole model)."""
        step = max(1, self.max_batch_tokens // max(width, 1))
        parts: list[list[_Job]] = []
        part: list[_Job] = []
        for job in group:  # sorted: the longest source last
            rows = len(part) + 1
            real = sum(j.keep for j in part) + job.keep
            if part and (rows > step or rows * job.keep > 2 * real + rows):
                parts.append(part)
                part = []
            part.append(job)
        return parts + [part] if part else parts

    def _run_jobs(self, jobs: list[_Job], *, counted: bool = True) -> dict[tuple, np.ndarray]:
        """Run jobs in order; a source shared by several jobs is copied, never extended."""
        uses = Counter(src for job in jobs for src in (job.sources or [job.source]))
        self._pinned = {s for s, n in uses.items() if n > 1}
        self._protect = set(uses) - {None}  # sources later jobs need: never evicted
        out: dict[tuple, np.ndarray] = {}
        try:
            for job in jobs:
                out.update(self._run(job, counted=counted))
        finally:
            self._pinned, self._protect = set(), set()
        return out

    def _run(self, job: _Job, *, counted: bool = True) -> dict[tuple, np.ndarray]:
        """Forward one job, store its contexts in the cache and return their log-probs."""
        keep, ctxs, keeps = job.keep, job.contexts, job.row_keeps()
        widths = [len(c) - k for c, k in zip(ctxs, keeps)]
        lps, cache, in_place = self._forward(job, widths)  # lps: [B, V] float32
        self._count(keeps, widths, counted)
        if in_place:  # the source now holds the new context: its old key keeps logits only
            self._demote(job.source)
        for src in job.sources or ():  # extended by one row each: the same, unless shared
            if src not in self._pinned and src in self._entries:
                self._demote(src)
        result = {}
        for r, c in enumerate(ctxs):
            lp = np.array(lps[r], dtype=np.float32)
            lp.flags.writeable = False  # shared with the cache
            row = None
            if self._kv_reuse and job.lengths is not None:  # without the padding
                row = ragged_row(cache, r, keeps[r], keep)
            elif self._kv_reuse:  # batch rows are views: [1, kv_heads, keep + w_r, head_dim]
                row = cache if len(ctxs) == 1 else clone_cache(cache, keep + widths[r], r)
            self._store(c, lp, row)
            result[c] = lp
        self._evict(protect=set(ctxs) | self._protect)
        return result

    def _demote(self, key: tuple) -> None:
        """Keep only the log-probs of an entry whose context was extended, first to go."""
        self._store(key, self._entries[key].logprobs, None)
        self._entries.move_to_end(key, last=False)

    def _forward(self, job: _Job, widths: list[int]):
        """One model pass over the right-padded suffixes of ``job`` on its source cache.

        Returns (log-probs [B, V] as numpy, the grown cache, whether the source entry
        was extended in place).
        """
        import torch

        rows, keeps = len(widths), job.row_keeps()
        pad = min(self.eos_token_ids, default=0)  # any valid id: padding is never attended
        ids = torch.full((rows, max(widths)), pad, dtype=torch.long)  # [B, S]
        for r, c in enumerate(job.contexts):
            ids[r, : widths[r]] = torch.tensor(c[keeps[r]:], dtype=torch.long)
        cache, in_place = self._source_cache(job, rows)
        positions = sorted(set(w - 1 for w in widths))  # logits only where needed
        ragged = {}
        if job.lengths is not None:  # widths are equal here: only the cache is padded
            ragged = {"attention_mask": ragged_mask(keeps, job.keep, widths[0]).to(self.device),
                      "position_ids": (torch.tensor(keeps)[:, None]
                                       + torch.arange(widths[0])[None, :]).to(self.device)}
        try:
            out = self.model(input_ids=ids.to(self.device), past_key_values=cache,
                             use_cache=True,
                             logits_to_keep=torch.tensor(positions, device=self.device),
                             **ragged)
        except BaseException:
            if in_place:  # some layers may have grown: the entry is no longer coherent
                self._drop(job.source)
            raise
        cache = out.past_key_values
        if self._kv_reuse and not plain_layers(cache):
            self._kv_reuse = False  # exotic cache layout: keep exact hits only
        col = {p: i for i, p in enumerate(positions)}
        logits = out.logits  # [B, len(positions), V]
        picked = torch.stack([logits[r, col[w - 1]] for r, w in enumerate(widths)])
        lps = torch.log_softmax(picked.float(), dim=-1).cpu().numpy()  # [B, V]
        return lps, cache, in_place

    def _source_cache(self, job: _Job, rows: int):
        """The cache to forward on (or None) and whether it is the source, extended in place."""
        if job.sources is not None:
            ragged = job.keep if job.lengths is not None else None
            return stack_caches([self._entries[k].cache for k in job.sources], ragged), False
        if job.source is None:
            return None, False
        entry = self._entries[job.source]
        self._entries.move_to_end(job.source)
        no_crop = entry.tokens.shape[0] == job.keep
        in_place = rows == 1 and no_crop and job.source not in self._pinned
        cache = entry.cache if in_place else clone_cache(entry.cache, job.keep)
        if rows > 1:
            cache.batch_repeat_interleave(rows)  # new tensors: [B, kv_heads, keep, head_dim]
        return cache, in_place

    def _count(self, keeps: list[int], widths: list[int], counted: bool) -> None:
        """Record one forward pass of ``len(widths)`` rows, row r on ``keeps[r]`` cached
        tokens."""
        c = self.counters
        c.forward_calls += 1
        c.batch_sizes.append(len(widths))
        if max(widths) == 1 and min(keeps) > 0:
            c.decode_tokens += len(widths)
        else:
            c.prefill_tokens += sum(widths)
        c.cached_tokens_reused += sum(keeps)
        if counted:
            c.cache_misses += len(widths)

