"""Backend over an OpenAI-compatible serving engine (vLLM, SGLang, llama.cpp servers).

rainlm stays a light search client: every next-token distribution is one
``POST {base_url}/completions`` with ``max_tokens=1, logprobs=k, temperature=0`` on the
context (prompt + answer so far); the engine keeps the weights, the KV cache and its
prefix cache. Contexts of one ``next_logprobs`` call go out concurrently over a bounded
thread pool, so an engine with continuous batching runs them together.

What crosses the wire:

* **Prompt**: token ids when the engine accepts them (vLLM, SGLang: probed once with a
  two-token prompt); otherwise the text of the ids (special tokens kept), which the
  engine re-tokenizes (llama-cpp-python's server accepts only strings). Text is exact
  whenever the ids are the tokenizer's own encoding of that text; a search path made of
  non-canonical pieces (" Par" + "is" instead of " Paris") is then scored as its
  canonical form. ``retokenized_contexts`` counts how often that happened.
* **Answer**: ``top_logprobs[0]``, a ``{token_text: logprob}`` dict, mapped back to ids by
  ``TokenStringMap`` (exact with vLLM's ``return_tokens_as_token_ids``, which is always
  requested; a reverse vocabulary otherwise: see ``token_strings.py`` for collisions and
  byte pieces).
* **Batches**: with token-id prompts, the contexts of one ``next_logprobs`` call go out
  as one request (a list of prompts); with text prompts, one request each, concurrently.
* **Continuations** (``decode``, ``backends.decoding``): with token-id prompts the engine
  decodes: a greedy batch is one request, a sampled continuation one request with its
  own ``seed`` (vLLM's extensions ``seed``, ``stop_token_ids``,
  ``include_stop_str_in_output``; ``top_p`` 1 and ``top_k`` −1 so the whole vocabulary
  is sampled, whatever defaults the engine read from the model's generation config).
  The token log-probabilities are the engine's raw ones (vLLM's default
  ``--logprobs-mode``), with the top ones where asked (``report_top``). Engines that take text only (llama.cpp's
  server) keep ``next_logprobs`` one token at a time: their tokens come back as text.
* **End of answer**: llama-cpp-python returns *no* logprobs when the greedy token ends
  generation; such a call is repeated once with ``logit_bias`` -100 on the end-of-turn
  ids. That server applies biases in its sampler only, so the logprobs it then reports
  are the unbiased ones (end-of-turn included).

Tokens <-> text and the chat template use a LOCAL Hugging Face tokenizer (``tokenizer=``
a folder, or found automatically when the engine serves the embedded GGUF or a local
model folder): the chat template and the end-of-turn ids exist only there, and the
search detokenizes after every imagined token, so an HTTP round trip per call would
double the request count. The engine's own tokenizer is compared with it in the tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rainlm.backends.base import BackendCounters, Capabilities, TokenDistribution
from rainlm.backends.decoding import DecodeRequest, Decoded, decode_by_next_logprobs
from rainlm.backends.chat_template import (END_OF_TURN_NAMES, control_count, hf_bos_ids,
                                          hf_control_ids, hf_encode_markup, hf_encode_text,
                                          hf_render_prompt, hf_text_tokenizer)
from rainlm.backends.http_json import HttpStatusError, JsonHttp, RetryPolicy
from rainlm.backends.token_strings import TokenStringMap, named_by_id
from rainlm.errors import BackendError, CapabilityError, ConfigError, ModelNotFoundError

__all__ = ["OpenAICompatibleBackend", "DEFAULT_MAX_TOP_LOGPROBS", "TOKENIZER_FILES",
           "tokenizer_folder_problem"]

DEFAULT_MAX_TOP_LOGPROBS = 20
"""vLLM's default ``--max-logprobs`` and the OpenAI API's top-logprobs maximum."""
API_KEY_ENV = ("RAINLM_ENGINE_API_KEY", "OPENAI_API_KEY")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
"""A local tokenizer folder holds at least one of these (``tokenizer=``, ``--tokenizer``)."""
_PROMPT_MODES = ("auto", "ids", "text")


class OpenAICompatibleBackend:
    """A model behind an OpenAI-compatible ``/v1/completions`` endpoint, as a rainlm Backend.

    Args:
        base_url: the engine's API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: model id to send; None: the first id of ``GET /v1/models``.
        api_key: Bearer token; default ``$RAINLM_ENGINE_API_KEY`` or ``$OPENAI_API_KEY``.
        tokenizer: a local Hugging Face tokenizer folder (or tokenizer object) for the
            served model; None: found automatically for the embedded GGUF or a local
            model folder, else a ConfigError asks for it.
        timeout_s: socket timeout of one HTTP attempt (a hang is not retried).
        max_retries: retries after connection errors, 429 and 5xx.
        backoff_s: first retry back-off in seconds (doubles each time).
        max_parallel: concurrent requests for one ``next_logprobs`` call.
        max_top_logprobs: the engine's top-logprobs cap (vLLM ``--max-logprobs``, default
            20); None: 20.
        name: display name; default ``"<model> @ <base_url>"``.
        prompt_mode: ``"auto"`` (probe whether the engine takes token ids), ``"ids"`` or
            ``"text"``.
        engine_decoding: let the engine decode continuations (imagined completions,
            greedy finishes) in one request where it takes token ids; False: one
            next-token request per token (an engine without vLLM's sampling extensions).
    """

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None,
                 tokenizer: Any = None, timeout_s: float = 30.0, max_retries: int = 3,
                 backoff_s: float = 0.5, max_parallel: int = 4,
                 max_top_logprobs: int | None = None, name: str | None = None,
                 prompt_mode: str = "auto", engine_decoding: bool = True):
        _check_positive("timeout_s", timeout_s)
        _check_positive("max_parallel", max_parallel)
        if max_retries < 0 or backoff_s < 0:
            raise ConfigError("max_retries" if max_retries < 0 else "backoff_s",
                              "must be >= 0.")
        if prompt_mode not in _PROMPT_MODES:
            raise ConfigError("prompt_mode", f"must be one of {', '.join(_PROMPT_MODES)}; "
                                             f"got {prompt_mode!r}.")
        cap = DEFAULT_MAX_TOP_LOGPROBS if max_top_logprobs is None else int(max_top_logprobs)
        _check_positive("max_top_logprobs", cap)
        if api_key is None:
            api_key = next((os.environ[k] for k in API_KEY_ENV if os.environ.get(k)), None)
        self.base_url = base_url.rstrip("/")
        self.http = JsonHttp(self.base_url, api_key=api_key, policy=RetryPolicy(
            timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s))
        self.model = self._resolve_model(model)
        self.tokenizer = _resolve_tokenizer(tokenizer, self.model)
        self.text_tokenizer = hf_text_tokenizer(self.tokenizer)  # control text stays text
        self.name = name or f"{Path(self.model).name or self.model} @ {self.base_url}"
        self.max_parallel = int(max_parallel)
        self.capabilities = Capabilities(
            full_distribution=False, max_top_logprobs=cap, prefix_cache=True, batched=True,
            chat_template=bool(getattr(self.tokenizer, "chat_template", None)))
        self.eos_token_ids = self._find_eos_ids()
        self.bos_ids = tuple(hf_bos_ids(self.tokenizer))
        self.counters = BackendCounters()
        self.prompt_mode = prompt_mode
        self.engine_decoding = bool(engine_decoding)
        self.exact_token_ids: bool | None = None  # tokens named "token_id:N"? (probed)
        self.retokenized_contexts = 0  # text-mode contexts the engine sees re-tokenized
        self.unmapped_tokens = 0  # top_logprobs entries that no id could be found for
        self.eos_retries = 0  # calls repeated with the end-of-turn bias
        self.requests_sent = 0  # HTTP requests to /completions (the prompt-mode probe aside)
        self._token_map = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ---------------------------------------------------------------- setup
    def _resolve_model(self, model: str | None) -> str:
        """The model id to send; checks it against ``GET /models`` (clear error if absent)."""
        try:
            listing = self.http.request("GET", "models")
        except HttpStatusError as exc:
            raise BackendError(
                f"Could not list the models of the engine at {exc.url} (HTTP {exc.status}: "
                f"{exc.message}). Check base_url (it should end in /v1) and api_key.") from exc
        ids = [str(m.get("id")) for m in listing.get("data", []) if isinstance(m, dict)]
        if model is None:
            if not ids:
                raise BackendError(f"The engine at {self.base_url} lists no models "
                                   f"(GET /models): pass model= explicitly.")
            return ids[0]
        if ids and model not in ids:
            raise BackendError(
                f"The engine at {self.base_url} does not serve model {model!r}; it serves "
                f"{', '.join(repr(i) for i in ids)}. Pass one of these as model= (or omit it).")
        return model

    def _find_eos_ids(self) -> frozenset[int]:
        """The tokenizer's eos and the known end-of-turn tokens of its vocabulary."""
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        ids.update(int(vocab[n]) for n in END_OF_TURN_NAMES if n in vocab)
        return frozenset(ids)

    def _end_of_turn_id(self) -> int | None:
        """The id an engine most likely means by an empty token string: end of turn."""
        vocab = self.tokenizer.get_vocab()
        for n in END_OF_TURN_NAMES:
            if n in vocab:
                return int(vocab[n])
        return self.tokenizer.eos_token_id

    def token_map(self):
        """The reverse vocabulary (built on first use, ~1 s for 50k tokens)."""
        with self._lock:
            if self._token_map is None:
                self._token_map = TokenStringMap(
                    self.tokenizer, end_of_turn_id=self._end_of_turn_id())
            return self._token_map

    def close(self) -> None:
        """Stop the request threads (the backend can still be used: they restart)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.http.close()

    def __enter__(self) -> OpenAICompatibleBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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

        The same ids as ``TransformersBackend.render_prompt`` with the same tokenizer.
        """
        ids = hf_render_prompt(self.tokenizer, self.text_tokenizer, messages,
                               use_template=self.capabilities.chat_template)
        if self.prompt_mode == "text":  # known to take text: refuse now, before any search
            self._refuse_control_text(ids, self._text_of(ids))
        return ids

    # ---------------------------------------------------------------- distributions
    def next_logprobs(self, contexts: Sequence[Sequence[int]], *,
                      top_k: int | None = None) -> list[TokenDistribution]:
        """Top-k next-token distribution after each context: one HTTP request for them all
        (token-id prompts), else one per context, concurrently.

        ``top_k=None`` asks for the cap (``capabilities.max_top_logprobs``); above the cap
        is a CapabilityError. Sparse results: ids [k'] and natural-log logprobs [k'].
        """
        cap = self.capabilities.max_top_logprobs
        k = cap if top_k is None else int(top_k)
        if k > cap:
            raise CapabilityError(
                f"top_k={k} is above the engine's top-logprobs cap of {cap} "
                f"(OpenAICompatibleBackend(max_top_logprobs=...)). Raise the engine's limit "
                f"(vLLM: --max-logprobs) and pass max_top_logprobs to match, or lower the "
                f"configuration's top-k settings (single_token_top_k, candidate_top_k, "
                f"widening_max_children) to at most {cap}.")
        if k < 1:
            raise ConfigError("top_k", f"must be >= 1; got {k}.")
        contexts = [[int(t) for t in c] for c in contexts]
        if not contexts:
            return []
        self._ensure_prompt_mode(contexts[0])
        self.counters.batch_sizes.append(len(contexts))
        if len(contexts) > 1 and self.prompt_mode == "ids":
            return self._batch(contexts, k)
        return self._in_parallel(self._one, [(c, k) for c in contexts])

    def _in_parallel(self, work, items: list[tuple]) -> list:
        """``work(*item)`` for each item, concurrently (at most ``max_parallel``)."""
        if len(items) == 1 or self.max_parallel == 1:
            return [work(*item) for item in items]
        pool = self._executor()
        futures = [pool.submit(work, *item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def _batch(self, contexts: list[list[int]], k: int) -> list[TokenDistribution]:
        """One request for all ``contexts`` (token-id prompts); a context whose answer
        came back without logprobs (the end-of-turn case) is asked again alone."""
        answer = self._post(self._body(contexts, k))
        choices = _choices_in_order(answer, len(contexts), self.base_url)
        self._count(answer.get("usage") or {})
        return [self._distribution(_first_top(choice), k) if _first_top(choice)
                else self._one(context, k) for context, choice in zip(contexts, choices)]

    takes_concurrent_calls = True
    """Calls from several threads at once are several HTTP requests, which the engine
    batches itself (``core.scheduler`` sends a round's different calls concurrently)."""

    # ---------------------------------------------------------------- continuations
    @property
    def decodes_natively(self) -> bool:
        """Whether ``decode`` runs on the engine: allowed (``engine_decoding``), and the
        engine takes token-id prompts and names its tokens by id (vLLM's
        ``return_tokens_as_token_ids``; both probed once): an engine without vLLM's
        request extensions decodes through ``next_logprobs``."""
        if not self.engine_decoding:
            return False
        self._ensure_prompt_mode([])
        if self.prompt_mode != "ids":
            return False
        if self.exact_token_ids is None:  # prompt_mode="ids" was given: not probed yet
            top, _ = self._complete(self.tokenize("Hello world")[:2], 1, None)
            self.exact_token_ids = named_by_id(top)
        return self.exact_token_ids

    def decode(self, requests: Sequence[DecodeRequest]) -> list[Decoded]:
        """Continue each request's context on the engine (``backends.decoding``):
        greedy requests alike in length and stops as one request, each sampled one as a
        request of its own (its own seed; its ``samples`` as the request's ``n``),
        concurrently. Engines that take text only decode through ``next_logprobs``."""
        requests = list(requests)
        if not requests:
            return []
        if not self.decodes_natively:
            return decode_by_next_logprobs(self, requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = ((r.max_tokens, r.stop, r.stop_token_ids, r.report_top, r.samples)
                   if r.temperature == 0 else ("own", i))
            groups.setdefault(key, []).append(i)
        members = list(groups.values())
        results = self._in_parallel(self._decode_group,
                                    [([requests[i] for i in m],) for m in members])
        out: list[list[Decoded]] = [[] for _ in requests]
        for m, decoded in zip(members, results):
            at = 0
            for i in m:
                out[i] = decoded[at:at + requests[i].samples]
                at += requests[i].samples
        return [d for part in out for d in part]

    def _decode_group(self, group: list[DecodeRequest]) -> list[Decoded]:
        """One request continuing every context of ``group`` (alike but for the context)."""
        first = group[0]
        sampled = first.temperature != 0
        report = min(int(first.report_top), self.capabilities.max_top_logprobs)
        body: dict[str, Any] = {
            "model": self.model, "max_tokens": int(first.max_tokens),
            "prompt": [list(r.context) for r in group] if len(group) > 1 else list(first.context),
            "temperature": float(first.temperature), "top_p": 1.0,
            "top_k": int(first.top_k) if first.top_k else -1,
            "logprobs": max(report, 1), "echo": False, "stream": False,
            "n": int(first.samples),
            "return_tokens_as_token_ids": True, "include_stop_str_in_output": True,
            # the model's own law, whatever defaults the engine read from its generation
            # config; only stop_token_ids end it; stop strings read the text as
            # detokenize() does (special tokens skipped)
            "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "min_p": 0.0, "ignore_eos": True, "skip_special_tokens": True,
        }
        if first.stop:
            body["stop"] = list(first.stop)
        if first.stop_token_ids:
            body["stop_token_ids"] = [int(t) for t in first.stop_token_ids]
        if sampled and first.seed is not None:
            body["seed"] = int(first.seed)
        answer = self._post(body)
        rows = [r for r in group for _ in range(r.samples)]
        choices = _choices_in_order(answer, len(rows), self.base_url)
        self._count(answer.get("usage") or {})
        return [self._decoded(choice, request) for choice, request in zip(choices, rows)]

    def _decoded(self, choice: Mapping[str, Any], request: DecodeRequest) -> Decoded:
        lp = choice.get("logprobs") or {}
        names = lp.get("tokens") or []
        raw = lp.get("token_logprobs") or []
        if any(x is None for x in raw):
            raise BackendError(f"The engine at {self.base_url} returned a token without its "
                               f"log-probability.")
        logprobs = [float(x) for x in raw]
        tokens = [self._token_id(name) for name in names]
        if len(logprobs) != len(tokens):
            raise BackendError(f"The engine at {self.base_url} returned {len(tokens)} tokens "
                               f"but {len(logprobs)} log-probabilities.")
        top = None
        if request.report_top:
            top = [{self._token_id(name): float(v) for name, v in (entry or {}).items()
                    if v is not None} for entry in (lp.get("top_logprobs") or [])]
        if tokens and tokens[-1] in request.stop_token_ids:
            finish = "eos"
        elif choice.get("finish_reason") == "length":
            finish = "length"
        else:
            finish = "stop"
        return Decoded(tokens, logprobs, finish, top)

    def _token_id(self, name: str) -> int:
        """A returned token's id: exact from ``token_id:N``, else the reverse vocabulary."""
        found = self.token_map().id_of(name)
        if found is None:
            raise BackendError(f"The engine at {self.base_url} returned a token {name!r} "
                               f"that is not in the local tokenizer's vocabulary: pass the "
                               f"served model's tokenizer folder as --tokenizer.")
        return found

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_parallel,
                                                thread_name_prefix="rainlm-http")
            return self._pool

    def _ensure_prompt_mode(self, sample: list[int]) -> None:
        """Probe once whether the engine takes token-id prompts (``prompt_mode="auto"``)."""
        if self.prompt_mode != "auto":
            return
        with self._lock:
            if self.prompt_mode != "auto":
                return
            probe = (sample[:2] if len(sample) >= 2 else self.tokenize("Hello world")[:2])
            cap = self.capabilities.max_top_logprobs
            try:  # (at the top-logprobs cap: an engine set lower says so now)
                answer = self.http.request("POST", "completions", self._body(probe, cap),
                                           probe=True)
                self.prompt_mode = "ids"
                self.exact_token_ids = named_by_id(
                    _first_top(_choices_in_order(answer, 1, self.base_url)[0]))
            except HttpStatusError as exc:
                if exc.status not in (400, 422, 500):  # busy or starting: probe again later
                    raise BackendError(f"The engine at {exc.url} is not ready (HTTP "
                                       f"{exc.status}): {exc.message}",
                                       retryable=True) from exc
                if "logprobs" in exc.message.lower():
                    raise CapabilityError(
                        f"The engine at {exc.url} refuses {cap} top log-probabilities "
                        f"({exc.message}). Start it with a higher cap (vLLM: --max-logprobs "
                        f"{cap} or more), or pass max_top_logprobs= no larger than its "
                        f"cap.") from exc
                # A rejection of the prompt's type (llama-cpp-python: 500 "Input should
                # be a valid string"): this engine wants text.
                self.prompt_mode = "text"

    def _body(self, prompt: list[int] | list[list[int]] | str, k: int,
              bias: Mapping[str, float] | None = None):
        body: dict[str, Any] = {
            "model": self.model, "prompt": prompt, "max_tokens": 1, "logprobs": k,
            "temperature": 0.0, "echo": False, "stream": False, "n": 1,
            "return_tokens_as_token_ids": True,  # vLLM: keys "token_id:N" (exact ids)
        }
        if bias:
            body["logit_bias"] = dict(bias)
        return body

    def _prompt_of(self, context: list[int]) -> list[int] | str:
        """The prompt to send: the ids, or (an engine that takes text) their text, which
        the engine tokenizes with control-token strings parsed (``_refuse_control_text``)."""
        if self.prompt_mode == "ids":
            return context
        text = self._text_of(context)
        if self._refuse_control_text(context, text):
            with self._lock:
                self.retokenized_contexts += 1
        return text

    def _text_of(self, context: list[int]) -> str:
        return self.tokenizer.decode(context, skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)

    def _refuse_control_text(self, context: list[int], text: str) -> bool:
        """Whether the engine reads ``text`` as other ids than ``context`` (a path the
        tokenizer splits otherwise); ConfigError (a 400 in the server) when it would read
        more control tokens: text the search holds as ordinary tokens (a user who typed
        ``<|im_end|>``, or a model that wrote it) is never sent to become one."""
        engine_reads = hf_encode_markup(self.tokenizer, text)
        if engine_reads == context:
            return False
        control = hf_control_ids(self.tokenizer)
        if control_count(engine_reads, control) > control_count(context, control):
            raise ConfigError(
                "messages", f"the engine at {self.base_url} takes text prompts and would "
                f"read control-token text in this conversation or its answer (e.g. "
                f"<|im_end|>) as control tokens; rainlm does not send it. Remove it, or "
                f"serve the model with an engine that takes token-id prompts (vLLM, SGLang).")
        return True

    def _one(self, context: list[int], k: int) -> TokenDistribution:
        """One ``/completions`` call -> a sparse distribution (retried once if EOS hid it)."""
        prompt = self._prompt_of(context)
        top, usage = self._complete(prompt, k, None)
        if not top:  # the greedy token ended generation and the engine dropped logprobs
            with self._lock:
                self.eos_retries += 1
            bias = {str(t): -100.0 for t in sorted(self.eos_token_ids)}
            top, usage2 = self._complete(prompt, k, bias)
            usage = usage2 or usage
            if not top:
                raise BackendError(
                    f"The engine at {self.http.url_of('completions')} returned no "
                    f"top_logprobs for a {len(context)}-token context (even with the "
                    f"end-of-turn tokens biased away). Check that it supports `logprobs` "
                    f"on /completions (llama.cpp: logits_all must be on).")
        self._count(usage)
        return self._distribution(top, k)

    def _distribution(self, top: Mapping[str, float], k: int) -> TokenDistribution:
        """A sparse distribution from one ``top_logprobs`` entry."""
        ids, lps, unmapped = self.token_map().convert(top)
        if ids.size == 0:
            raise BackendError(
                f"None of the tokens the engine at {self.base_url} reported "
                f"({list(top)[:5]}) is in the local tokenizer's vocabulary: the tokenizer "
                f"does not match the served model {self.model!r}; pass its folder as "
                f"--tokenizer (tokenizer= in Python).")
        if unmapped:
            with self._lock:
                self.unmapped_tokens += unmapped
        return TokenDistribution(lps[:k], ids[:k])

    def _post(self, body: Mapping[str, Any]) -> dict:
        """POST one ``/completions`` request (counted in ``requests_sent``)."""
        with self._lock:
            self.requests_sent += 1
        try:
            return self.http.request("POST", "completions", dict(body))
        except HttpStatusError as exc:
            raise BackendError(
                f"The engine at {exc.url} rejected the request (HTTP {exc.status}): "
                f"{exc.message}") from exc

    def _complete(self, prompt, k: int, bias) -> tuple[dict, dict]:
        """POST one completion; returns (top_logprobs[0] or {}, usage)."""
        answer = self._post(self._body(prompt, k, bias))
        choice = _choices_in_order(answer, 1, self.base_url)[0]
        return _first_top(choice), answer.get("usage") or {}

    def _count(self, usage: Mapping[str, Any]) -> None:
        """Counters from the engine's ``usage``: prompt tokens count as prefill unless the
        engine reports them as cached (vLLM/SGLang ``prompt_tokens_details``)."""
        prompt = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        with self._lock:
            c = self.counters
            c.forward_calls += 1
            c.prefill_tokens += max(prompt - cached, 0)
            c.cached_tokens_reused += cached
            c.decode_tokens += int(usage.get("completion_tokens") or 0)


def _choices_in_order(answer: Any, count: int, base_url: str) -> list[Mapping[str, Any]]:
    """The ``count`` choices of a completion, in prompt order (by ``index``)."""
    try:
        choices = sorted(answer["choices"], key=lambda c: int(c.get("index", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendError(f"The engine at {base_url} answered without choices: "
                           f"{str(answer)[:300]}") from exc
    if len(choices) != count:
        raise BackendError(f"The engine at {base_url} answered {len(choices)} choices for "
                           f"{count} prompts.")
    return choices


def _first_top(choice: Mapping[str, Any]) -> dict:
    """The first token's ``top_logprobs`` entry of a choice ({} when missing)."""
    lp = choice.get("logprobs") or {}
    tops = lp.get("top_logprobs") or []
    return tops[0] if tops and tops[0] else {}


def _check_positive(field: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(field, f"must be > 0; got {value!r}.")


def _resolve_tokenizer(tokenizer: Any, model_id: str):
    """A local Hugging Face tokenizer for the served model (never downloads)."""
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer  # already a tokenizer object
    folder = _tokenizer_folder(tokenizer, model_id)
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ModelNotFoundError(
            "OpenAICompatibleBackend needs the 'transformers' package for the model's "
            "tokenizer and chat template: `pip install 'rainlm[model]'`.") from exc
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"Could not load a tokenizer from {str(folder)!r}: {exc}. Pass a local folder "
            f"holding the served model's tokenizer files (--tokenizer FOLDER, or "
            f"tokenizer=FOLDER in Python).") from exc


def tokenizer_folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a local tokenizer folder (a folder holding ``TOKENIZER_FILES``),
    naming the path; None when it is one. (The CLI's ``--tokenizer``, ``ServerSettings``
    and ``tokenizer=`` all check with this.)"""
    folder = Path(path).expanduser()
    if folder.is_file():
        return (f"{str(path)!r} is a file; pass the folder that holds the served model's "
                f"tokenizer files ({' or '.join(TOKENIZER_FILES)})")
    if not folder.is_dir():
        return f"no folder at {str(path)!r}"
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return (f"the folder {str(path)!r} holds no tokenizer files "
                f"({' or '.join(TOKENIZER_FILES)}); pass the folder of the served model's "
                f"tokenizer")
    return None


def _tokenizer_folder(tokenizer: str | os.PathLike | None, model_id: str) -> Path:
    if tokenizer is not None:
        problem = tokenizer_folder_problem(tokenizer)
        if problem is not None:
            raise ModelNotFoundError(f"tokenizer: {problem}.")
        return Path(tokenizer).expanduser()
    if _is_embedded(model_id):
        from rainlm.backends.embedded import (_is_complete, embedded_cache_dir,
                                              ensure_embedded_folder)

        folder = embedded_cache_dir()
        return folder if _is_complete(folder) else ensure_embedded_folder()
    if Path(model_id).is_dir():
        return Path(model_id)
    raise ConfigError(
        "tokenizer", f"the engine serves {model_id!r}, whose tokenizer rainlm cannot find "
                     f"locally (it is not a local folder). Pass a local folder with that "
                     f"model's tokenizer files (tokenizer.json / tokenizer_config.json with "
                     f"its chat template): --tokenizer FOLDER on the command line, "
                     f"tokenizer=FOLDER in Python.")


def _is_embedded(model_id: str) -> bool:
    """Whether the engine serves the embedded SmolLM2 GGUF (its id is the file path)."""
    from rainlm.backends.embedded import EMBEDDED_GGUF, embedded_model_path

    if Path(model_id).name == EMBEDDED_GGUF:
        return True
    try:
        return Path(model_id).resolve() == embedded_model_path().resolve()
    except (ModelNotFoundError, OSError):
        return False

