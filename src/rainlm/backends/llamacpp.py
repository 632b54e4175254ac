"""In-process backend over llama.cpp (llama-cpp-python), rewinding KV-cached sequences.

The GGUF runs as llama.cpp quantised it (the embedded model: Q4_1 weights), which decodes
several times faster than the transformers backend on a CPU.

``next_logprobs`` keeps two caches:

* a bounded LRU of distributions keyed by the context tuple: an exact repeat is answered
  with no forward pass (a hit);
* ``n_sequences`` independent KV-cached sequences (llama.cpp sequence ids, each with its
  own buffer of ``n_ctx`` cells). A new context goes to the sequence sharing its longest
  prefix (or the least recently used one), which is rewound to that prefix
  (``llama_memory_seq_rm``) and evaluates only the rest, in ``llama_decode`` calls of at
  most ``n_batch`` tokens. With the default two, the search's prompt + answer and the
  judge's few-shot prompt each keep their own sequence (measured on a RAIN answer: 4.4x
  fewer tokens encoded than with one). The contexts of one call are evaluated in sorted
  order (a depth-first walk of their prefix tree), so a judge's shared prompt or a
  node's shared state is encoded once per call. A lone new token is evaluated together
  with the token before it (see "Exactness" below).

Why no batching and no shared cells: one unified KV cache holding a sequence per search
branch (prefixes shared with ``llama_memory_seq_cp``, contexts batched together) was
implemented first and measured: a context's log-probs then depend on which other
sequences' cells are in the cache (they change the attention's cell range and layout,
and so the rounding; see "Exactness"), by up to ~0.6 against a fresh evaluation. Separate
buffers evaluated one at a time match a fresh evaluation exactly.

A context longer than ``n_ctx`` is a ConfigError, never silently truncated.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rainlm.backends.base import BackendCounters, Capabilities, TokenDistribution
from rainlm.backends.chat_template import (END_OF_TURN_NAMES, encode_conversation,
                                          plain_messages, plain_transcript,
                                          render_chat_template)
from rainlm.errors import BackendError, CapabilityError, ConfigError, ModelNotFoundError

__all__ = ["LlamaCppBackend", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'rainlm[llamacpp]'"
# Exactness. The embedded model's weights are Q4_1 and llama.cpp quantises activations
# to 8 bits per block, so a float-rounding difference can flip a quantisation step and
# move log-probs by up to ~0.4 (measured). Two llama.cpp defaults make results depend on
# how a context was split into batches: float16 keys/values, and a batch of ONE token,
# which runs matrix-vector kernels (summing in another order) instead of the matrix
# kernels of 2+ token batches. So keys/values are float32 (46 KiB per cached token for
# SmolLM2-135M) and a context is never finished with a lone token: the token before it
# is re-evaluated with it (a decode step encodes 2 tokens, ~25% slower than 1). With
# both, a rewound, extended or fresh evaluation of a context gives bit-identical
# log-probs in every case measured, so a search never depends on what the cache held.
_GGML_TYPE_F32 = 0
_MIN_BATCH = 2  # fewest tokens per llama_decode call (a 1-token context excepted)


class _KVFull(Exception):
    """llama.cpp found no free KV cells for a batch (the cache is fragmented)."""


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two id sequences."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    x = np.asarray(a[:n], dtype=np.int64)
    y = np.asarray(b[:n], dtype=np.int64)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n


def _import_llama_cpp():
    """The ``llama_cpp`` module, or CapabilityError saying how to install it."""
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise CapabilityError(
            f"The llama.cpp backend needs the 'llama_cpp' package (llama-cpp-python): "
            f"install it with `{INSTALL_HINT}` (it builds llama.cpp from source, about "
            f"8 minutes on 2 cores), or use the transformers backend.")
    import llama_cpp

    return llama_cpp


class LlamaCppBackend:
    """A GGUF model run by llama.cpp in this process, as a rainlm ``Backend``.

    Args:
        model_path: a ``.gguf`` file; None means the embedded SmolLM2-135M-Instruct.
        n_ctx: KV-cache cells of each cached sequence; also the longest context.
        n_threads: CPU threads for llama.cpp (None: the CPU count, at most 8).
        n_batch: most tokens per ``llama_decode`` call (longer prefills are split).
        name: model name recorded in results (default: the file name, or
            "SmolLM2-135M-Instruct (embedded, llama.cpp)").
        distribution_cache: distributions kept for exact repeats (LRU entries of [V]
            float32 each: 192 KiB for SmolLM2).
        n_sequences: independent KV-cached sequences, each of ``n_ctx`` cells; a context
            goes to the one sharing its longest prefix, so the search's answer and the
            judge's few-shot prompt each keep their own (memory: ``n_ctx`` x
            ``n_sequences`` cells, 46 KiB each for SmolLM2-135M).
        verbose: let llama.cpp print its logs (they go to stderr; process-wide setting).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, n_ctx: int = 4096,
                 n_threads: int | None = None, n_batch: int = 512, name: str | None = None,
                 distribution_cache: int = 256, n_sequences: int = 2,
                 verbose: bool = False):
        for fld, value, low in (("n_ctx", n_ctx, 16), ("n_batch", n_batch, 8),
                                ("distribution_cache", distribution_cache, 0),
                                ("n_sequences", n_sequences, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(fld, f"must be an integer >= {low}; got {value!r}.")
        if n_threads is not None and (not isinstance(n_threads, int) or n_threads < 1):
            raise ConfigError("n_threads", f"must be None or an integer >= 1; got {n_threads!r}.")
        lc = _import_llama_cpp()
        path = self._resolve_path(model_path)
        max_seqs = int(lc.llama_max_parallel_sequences())
        if n_sequences > max_seqs:
            raise ConfigError("n_sequences", f"llama.cpp allows at most {max_seqs}; "
                                             f"got {n_sequences}.")
        self._lc = lc
        self._set_logging(verbose)
        self.model_path = path
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_sequences = n_sequences
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 8))
        self._model = self._ctx = self._batch = None
        self._controls: frozenset[int] | None = None  # _control_ids
        self._load(path)
        if name is None and model_path is None:
            from rainlm.backends.embedded import EMBEDDED_NAME

            name = f"{EMBEDDED_NAME} (embedded, llama.cpp)"
        self.name = name or path.name
        self.capabilities = Capabilities(full_distribution=True, prefix_cache=True,
                                         batched=False, chat_template=bool(self._template))
        self.eos_token_ids = self._find_eos_ids()
        add_bos = self._lc.llama_vocab_get_add_bos(self._vocab)
        self.bos_ids = (int(self._lc.llama_vocab_bos(self._vocab)),) if add_bos else ()
        self.counters = BackendCounters()
        self.distribution_cache = distribution_cache
        self._dists: OrderedDict[tuple, np.ndarray] = OrderedDict()  # LRU, oldest first
        # per sequence id: the ids whose keys/values it holds at positions [0, n)
        self._streams: list[list[int]] = [[] for _ in range(self.n_sequences)]
        self._used = [0] * self.n_sequences  # tick of each sequence's last use (LRU)
        self._tick = 0
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- loading
    @staticmethod
    def _resolve_path(model_path: str | os.PathLike | None) -> Path:
        if model_path is None:
            from rainlm.backends.embedded import embedded_model_path

            return embedded_model_path()
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"No GGUF model file at {str(path)!r}: pass the path of a .gguf file "
                f"(or model_path=None for the embedded SmolLM2-135M-Instruct).")
        return path

    def _set_logging(self, verbose: bool) -> None:
        """llama-cpp-python routes llama.cpp's logs through its (kept-alive) callback."""
        import logging

        logging.getLogger("llama-cpp-python").setLevel(
            logging.DEBUG if verbose else logging.ERROR)

    def _load(self, path: Path) -> None:
        lc = self._lc
        mparams = lc.llama_model_default_params()
        model = lc.llama_model_load_from_file(str(path).encode("utf-8"), mparams)
        if not model:
            raise ModelNotFoundError(
                f"llama.cpp could not load {str(path)!r}: is it a GGUF model file of an "
                f"architecture this llama-cpp-python supports?")
        self._model = model
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = self.n_ctx * self.n_sequences  # n_ctx cells for each sequence
        cparams.n_batch = self.n_batch
        cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = self.n_sequences
        cparams.kv_unified = False  # one buffer per sequence: they never share cells
        cparams.n_threads = cparams.n_threads_batch = self.n_threads
        cparams.no_perf = True
        cparams.type_k = cparams.type_v = _GGML_TYPE_F32  # see "Exactness" above
        cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as Llama(...) does
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            self.close()
            raise BackendError(f"llama.cpp could not create a context for {str(path)!r} "
                               f"with n_ctx={self.n_ctx}: lower n_ctx.")
        self._ctx = ctx
        if int(lc.llama_n_ctx_seq(ctx)) < self.n_ctx:
            self.close()
            raise BackendError(f"llama.cpp gave each sequence fewer than n_ctx={self.n_ctx} "
                               f"cells: lower n_sequences ({self.n_sequences}).")
        self._mem = lc.llama_get_memory(ctx)
        self._batch = lc.llama_batch_init(self.n_batch, 0, 1)
        self._vocab = lc.llama_model_get_vocab(model)
        self.vocab_size = int(lc.llama_vocab_n_tokens(self._vocab))
        self._pieces: dict[int, bytes] = {}
        template = lc.llama_model_chat_template(model, None)
        self._template = template.decode("utf-8") if template else None

    def close(self) -> None:
        """Free llama.cpp's context, batch and model (the backend is unusable after)."""
        lc = getattr(self, "_lc", None)
        if lc is None:
            return
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            lc.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            lc.llama_model_free(self._model)
            self._model = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to do
            pass

    # ---------------------------------------------------------------- text <-> ids
    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text``: no BOS, special-token text is not parsed as special."""
        return self._tokenize(text, special=False)

    def _require_open(self) -> None:
        if self._ctx is None:
            raise BackendError(f"the llama.cpp backend {self.name!r} was closed: build a "
                               f"new LlamaCppBackend.")

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        self._require_open()
        lc = self._lc
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (lc.llama_token * size)()
        n = lc.llama_tokenize(self._vocab, data, len(data), buf, size, False, special)
        if n < 0:  # buffer too small: -n is the size needed
            size = -n
            buf = (lc.llama_token * size)()
            n = lc.llama_tokenize(self._vocab, data, len(data), buf, size, False, special)
            if n < 0:
                raise BackendError(f"llama.cpp failed to tokenize {text[:40]!r}...")
        return [int(t) for t in buf[:n]]

    def _piece(self, token: int) -> bytes:
        """Bytes of one token, control tokens (end of turn, ...) as empty."""
        piece = self._pieces.get(token)
        if piece is None:
            self._require_open()
            lc = self._lc
            size = 64
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
            if n < 0:
                size = -n
                buf = ctypes.create_string_buffer(size)
                n = lc.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
            piece = buf.raw[:max(n, 0)]
            self._pieces[token] = piece
        return piece

    def detokenize(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``, special tokens skipped (bad UTF-8 becomes U+FFFD)."""
        data = b"".join(self._piece(int(t)) for t in token_ids
                        if 0 <= int(t) < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def _token_text(self, token: int) -> str:
        return self._lc.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace")

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of a conversation, ending where the assistant's answer begins.

        Uses the GGUF's chat template (``tokenizer.chat_template``) rendered as
        transformers renders it; its markup is tokenized with special tokens parsed and
        the messages' content as text (``encode_conversation``); a model without one
        gets a plain ``Human: ...\\n\\nAssistant:`` transcript.
        """
        msgs = plain_messages(messages)
        if self._template:
            lc = self._lc
            specials = {}
            for key, tok in (("bos_token", lc.llama_vocab_bos(self._vocab)),
                             ("eos_token", lc.llama_vocab_eos(self._vocab))):
                if tok is not None and 0 <= int(tok) < self.vocab_size:
                    specials[key] = self._token_text(int(tok))

            def render(conversation: list[dict[str, str]]) -> str:
                return render_chat_template(self._template, conversation,
                                            add_generation_prompt=True, special_tokens=specials)

            return encode_conversation(msgs, render, self._markup_ids, self.tokenize,
                                       self._control_ids())
        return list(self.bos_ids) + self.tokenize(plain_transcript(messages))

    def _markup_ids(self, text: str) -> list[int]:
        """Ids of chat-template markup (control-token strings parsed)."""
        return self._tokenize(text, special=True)

    def _control_ids(self) -> frozenset[int]:
        """Ids that text parsed with ``special=True`` can become: control and
        user-defined tokens (computed once: one attribute read per vocabulary entry)."""
        if self._controls is None:
            lc, kinds = self._lc, self._lc.LLAMA_TOKEN_ATTR_CONTROL | self._lc.LLAMA_TOKEN_ATTR_USER_DEFINED
            self._controls = frozenset(t for t in range(self.vocab_size)
                                       if int(lc.llama_vocab_get_attr(self._vocab, t)) & kinds)
        return self._controls

    def _find_eos_ids(self) -> frozenset[int]:
        """The GGUF's EOS token and the known end-of-turn tokens of its vocabulary."""
        ids: set[int] = set()
        eos = int(self._lc.llama_vocab_eos(self._vocab))
        if 0 <= eos < self.vocab_size:
            ids.add(eos)
        for name in END_OF_TURN_NAMES:
            found = self._tokenize(name, special=True)
            if len(found) == 1 and self._token_text(found[0]) == name:
                ids.add(found[0])
        return frozenset(ids)

    # ---------------------------------------------------------------- the caches
    def clear_cache(self) -> None:
        """Forget every cached distribution and KV-cached sequence (counters are kept)."""
        with self._lock:
            self._dists.clear()
            self._clear_kv()

    def _clear_kv(self) -> None:
        self._lc.llama_memory_clear(self._mem, True)
        self._streams = [[] for _ in range(self.n_sequences)]

    def cache_info(self) -> dict:
        """Cached distributions and the tokens held in the KV cache."""
        with self._lock:
            return {"entries": len(self._dists),
                    "kv_entries": sum(1 for t in self._streams if t),
                    "bytes": sum(a.nbytes for a in self._dists.values()),
                    "budget_entries": self.distribution_cache,
                    "kv_tokens": sum(len(t) for t in self._streams), "n_ctx": self.n_ctx,
                    "n_sequences": self.n_sequences}

    def _remember(self, key: tuple, logprobs: np.ndarray) -> None:
        if self.distribution_cache == 0:
            return
        self._dists[key] = logprobs
        self._dists.move_to_end(key)
        while len(self._dists) > self.distribution_cache:
            self._dists.popitem(last=False)

    # ---------------------------------------------------------------- the hot path
    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        """Dense next-token log-probs ``[V]`` (float32) after each context, same order.

        ``top_k`` is ignored (this backend is dense). Returned arrays are read-only and
        may be shared with the cache.
        """
        keys = [tuple(int(t) for t in c) for c in contexts]
        for i, key in enumerate(keys):
            self._check_context(i, key)
        with self._lock:
            self._require_open()
            found: dict[tuple, np.ndarray] = {}
            misses: set[tuple] = set()
            for key in keys:
                if key in found or key in misses:
                    self.counters.cache_hits += 1  # a repeat within this call
                elif key in self._dists:
                    self._dists.move_to_end(key)
                    found[key] = self._dists[key]
                    self.counters.cache_hits += 1
                else:
                    misses.add(key)
            for key in self._order(misses):
                found[key] = self._evaluate(key)
            return [TokenDistribution(found[key]) for key in keys]

    def _order(self, misses: set[tuple]) -> list[tuple]:
        """Sorted = a depth-first walk of the contexts' prefix tree (each shares the
        longest possible prefix with the one before), started at the context sharing
        the most with what the cache holds now."""
        order = sorted(misses)
        if len(order) > 1 and any(self._streams):
            shared = [max(_lcp(t, k) for t in self._streams) for k in order]
            first = int(np.argmax(shared))
            order = order[first:] + order[:first]
        return order

    def _check_context(self, i: int, key: tuple) -> None:
        if not key:
            raise ConfigError("contexts", f"every context needs at least one token; "
                                          f"context {i} is empty.")
        if len(key) > self.n_ctx:
            raise ConfigError("n_ctx", f"context {i} has {len(key)} tokens but the llama.cpp "
                                       f"backend was built with n_ctx={self.n_ctx}: build it "
                                       f"with LlamaCppBackend(..., n_ctx={len(key)}) or more "
                                       f"(or shorten the prompt / max_new_tokens).")
        if min(key) < 0 or max(key) >= self.vocab_size:
            bad = next(t for t in key if not 0 <= t < self.vocab_size)
            raise ConfigError("contexts", f"context {i} holds token id {bad}, outside the "
                                          f"vocabulary [0, {self.vocab_size}).")

    def _evaluate(self, key: tuple) -> np.ndarray:
        """Rewind the best sequence to its common prefix with ``key``, evaluate the rest
        and return (and remember) the log-probs after ``key``."""
        seq = self._pick(key)
        shared = min(_lcp(self._streams[seq], key), len(key) - 1)  # last token: logits
        keep = max(0, min(shared, len(key) - _MIN_BATCH))  # see _MIN_BATCH
        self._lc.llama_memory_seq_rm(self._mem, seq, keep, -1)
        self._streams[seq] = self._streams[seq][:keep]
        try:
            lp = self._decode_from(seq, key, keep)
        except _KVFull:  # cells left fragmented: start this sequence over
            self._lc.llama_memory_seq_rm(self._mem, seq, -1, -1)
            self._streams[seq] = []
            keep = 0
            lp = self._decode_from(seq, key, keep)
        c = self.counters
        if len(key) - shared == 1 and keep > 0:  # a decode step (1 new + 1 re-evaluated)
            c.decode_tokens += len(key) - keep
        else:
            c.prefill_tokens += len(key) - keep
        c.cached_tokens_reused += keep
        c.cache_misses += 1
        self._remember(key, lp)
        return lp

    def _pick(self, key: tuple) -> int:
        """The sequence sharing the longest prefix with ``key``; with none shared, the
        least recently used one (so a judge's prompt and the answer's keep theirs)."""
        self._tick += 1
        shared = [_lcp(t, key) for t in self._streams]
        best = max(range(self.n_sequences), key=lambda s: (shared[s], self._used[s]))
        if shared[best] == 0:
            best = min(range(self.n_sequences), key=lambda s: self._used[s])
        self._used[best] = self._tick
        return best

    def _decode_from(self, seq: int, key: tuple, start: int) -> np.ndarray:
        """Evaluate ``key[start:]`` in ``llama_decode`` calls of at most ``n_batch``
        tokens; the log-probs after the last one."""
        lc, batch = self._lc, self._batch
        tok = np.ctypeslib.as_array(batch.token, shape=(self.n_batch,))
        pos = np.ctypeslib.as_array(batch.pos, shape=(self.n_batch,))
        nseq = np.ctypeslib.as_array(batch.n_seq_id, shape=(self.n_batch,))
        logits = np.ctypeslib.as_array(batch.logits, shape=(self.n_batch,))
        n = 0
        lo = start
        while lo < len(key):
            hi = min(lo + self.n_batch, len(key))
            if 0 < len(key) - hi < _MIN_BATCH:
                hi = len(key) - _MIN_BATCH  # the last batch gets _MIN_BATCH tokens too
            n = hi - lo
            tok[:n] = key[lo:hi]
            pos[:n] = np.arange(lo, hi)
            nseq[:n] = 1
            logits[:n] = 0
            logits[n - 1] = 1 if hi == len(key) else 0
            for r in range(n):
                batch.seq_id[r][0] = seq
            batch.n_tokens = n
            rc = lc.llama_decode(self._ctx, batch)
            if rc == 1 and self._streams[seq]:
                raise _KVFull
            if rc != 0:
                raise BackendError(f"llama_decode failed (code {rc}) on {n} tokens at "
                                   f"position {lo} (n_ctx={self.n_ctx}).")
            self._streams[seq].extend(key[lo:hi])
            self.counters.forward_calls += 1
            self.counters.batch_sizes.append(1)
            lo = hi
        return self._logprobs(n - 1)

    def _logprobs(self, row: int) -> np.ndarray:
        """Log-softmax ``[V]`` float32 of the logits of batch row ``row`` (read-only)."""
        ptr = self._lc.llama_get_logits_ith(self._ctx, row)
        if not ptr:
            raise BackendError(f"llama.cpp returned no logits for batch row {row}.")
        x = np.ctypeslib.as_array(ptr, shape=(self.vocab_size,)).astype(np.float64)
        x -= x.max()
        x -= np.log(np.exp(x).sum())
        lp = x.astype(np.float32)
        lp.flags.writeable = False  # shared with the cache
        return lp
