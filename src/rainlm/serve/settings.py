"""ServerSettings: every knob of ``rain serve``, validated once, errors naming the field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rainlm.config import PRESETS
from rainlm.errors import ConfigError
from rainlm.policy.lang import FAIL_SAFE_ACTIONS, REFUSAL_MESSAGES
from rainlm.policy.model import FailSafe, Policy, check_threshold
from rainlm.request import (DEFAULT_MAX_NEW_TOKENS, DEFAULT_PRESET, DEVICES, EMBEDDERS,
                            GenerationParams, field_default)

__all__ = ["ServerSettings", "POLICIES", "DEFAULT_REFUSAL"]

POLICIES = FAIL_SAFE_ACTIONS
"""The fail-safe's actions on an answer judged below the threshold."""
DEFAULT_REFUSAL = REFUSAL_MESSAGES["en"]
"""What a refused request receives unless told otherwise (a Japanese policy file's
default is ``REFUSAL_MESSAGES["ja"]``)."""


@dataclass(frozen=True)
class ServerSettings:
    """How one ``rain serve`` process answers requests."""

    host: str = "127.0.0.1"
    """Interface to bind. The default answers only this machine; use 0.0.0.0 (with an
    API key) to expose the server."""
    port: int = 8000
    """TCP port to listen on (0: any free port)."""
    model: str | None = None
    """Model spec for ``rainlm.load_backend`` (None: the embedded SmolLM2-135M-Instruct)."""
    tokenizer: str | None = None
    """A local folder with the served model's tokenizer files (tokenizer.json or
    tokenizer_config.json), for a ``model`` served by an OpenAI-compatible engine
    (``"openai:BASE_URL#MODEL"``) under a name that is not a local folder (None: the
    backend finds it, or says it cannot). Only that kind takes one; never downloaded."""
    model_name: str | None = None
    """Name reported in responses and ``/v1/models`` (None: the backend's name)."""
    device: str = "auto"
    """Where the model runs: "auto", "cpu" or "cuda"."""
    api_key: str | None = field(default=None, repr=False)
    """When set, every ``/v1/*`` route and ``/review`` need ``Authorization: Bearer KEY``
    (``/review`` also accepts ``?key=KEY``). ``/health`` stays open. Never stored."""
    db_path: str | None = field(default=None, repr=False)
    """Audit store: an SQLite file, or a ``postgresql://`` URL several replicas share.
    None: ``$RAINLM_AUDIT_DB`` or ``~/.local/share/rainlm/audit.sqlite3``; ":memory:"
    keeps it in memory. Never shown with its password (``trace.location.describe``)."""
    policy: str | None = None
    """Fail-safe for answers whose self-evaluation is below ``threshold``: "refuse"
    (replace with ``refusal_message``), "flag" (send, queue for human review) or "pass".
    Not given (None): ``policy_file``'s ``[fail_safe]`` action, else "flag" (never None
    once the settings are made, like the next two)."""
    threshold: float | None = None
    """Answers scoring below this (continuous self-evaluation, in [-1, 1]) are acted on.
    Not given (None): ``policy_file``'s ``[fail_safe]`` threshold, else 0.0."""
    refusal_message: str | None = None
    """Text sent instead of an answer the "refuse" policy withholds. Not given (None):
    ``policy_file``'s ``[fail_safe]`` message (or its language's default), else
    ``DEFAULT_REFUSAL``."""
    policy_file: Policy | None = None
    """A policy file's policy (``--policy-file``; ``rainlm.policy``): the judge of every
    search (whatever a request chooses), and the fail-safe's value of each final answer
    (``rainlm.policy.judging``) in place of the self-evaluation with the preset's
    rubric. Its ``[fail_safe]`` gives each of ``policy``, ``threshold`` and
    ``refusal_message`` that is not given (a value given wins, option by option; the
    values are settled when the settings are made, so ``dataclasses.replace`` with
    another file keeps them). None: no policy file."""
    allow_request_policy: bool = False
    """Whether a request may choose its own policy/threshold (``rain.policy``,
    ``rain.threshold``). Off: only the server's policy applies."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (besides 127.0.0.1, localhost and ::1) that requests may address in
    their Host header; others get 400. Stops DNS-rebinding pages from reading the API.
    Add the name or address clients use when serving beyond this machine."""
    allow_request_judge: bool = False
    """Whether a request may choose how its SEARCH judges: ``rain.rubric``,
    ``rain.scoring``, ``rain.judge_orders``, or a ``rain.preset`` with another rubric.
    Either way the fail-safe judges every answer with the server's preset's rubric and
    judge orders, so no request can talk its way past it."""
    shutdown_timeout_s: float = 10.0
    """On SIGTERM/SIGINT, how long running searches may go on before they are stopped at
    their next model call and their answers so far recorded; queued requests are recorded
    as rejected at once. A second signal stops them at once (still recorded)."""
    max_concurrent: int = 8
    """Searches that run at once. They advance together in one scheduler, which batches
    their model calls (``core/shared_backend.py``): more concurrent searches share more
    forward passes, each a little slower."""
    cache_mb: float | None = None
    """Memory budget of the in-process model's prefix KV cache, in MiB (None: the
    backend's own, 512 for transformers). Concurrent searches each keep a working set
    there: too small a budget makes them evict each other's prefixes and encode them
    again (``benchmarks/RESULTS.md``, "Searches together"). Ignored, with a warning, by
    backends without such a budget (llama.cpp in process; an HTTP engine has its own)."""
    queue_size: int = 8
    """Requests that may wait while ``max_concurrent`` run; more get 429 with
    Retry-After."""
    max_time_budget_s: float = 120.0
    """Largest per-request search time budget (``rain.time_budget_s``), in seconds."""
    default_time_budget_s: float = 30.0
    """Search time budget of a request that gives none, in seconds."""
    max_new_tokens_limit: int = 512
    """Largest ``max_tokens`` a request may ask for, in tokens."""
    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    """Answer length of a request that gives no ``max_tokens``, in tokens."""
    max_candidates: int = 32
    """Largest candidate count a request may set: ``num_candidates``, ``candidate_draws``,
    ``single_token_top_k``, ``candidate_top_k``, ``widening_max_children``,
    ``widening_samples``, ``parallel_leaves`` (each paid for in every expansion), and
    ``answer_checks`` (up to that many judged prefixes per checked whole answer)."""
    max_token_set_length: int = 16
    """Longest token set (``token_set_lengths`` entries) a request may ask for."""
    max_searches_limit: int = 256
    """Largest search count a request may set: ``max_searches``, ``min_new_searches``,
    ``max_searches_per_step``, ``max_total_searches``, ``early_stop_visits``."""
    max_prompt_tokens: int = 2048
    """Longest rendered prompt (chat template included), in tokens; longer: 400."""
    max_body_bytes: int = 1_048_576
    """Largest request body, in bytes; larger: 413."""
    preset: str = DEFAULT_PRESET
    """RainConfig preset of requests that name none (``rain.preset``)."""
    embedder: str = field_default(GenerationParams, "embedder")
    """Sentence encoder for the similarity update (``rainlm.request.EMBEDDERS``)."""
    retry_after_s: int = 5
    """Retry-After (seconds) sent with 503 while the model loads or the server stops;
    429s estimate it from the queue and recent request times (at least 1)."""

    def __post_init__(self) -> None:
        _fail_safe_defaults(self)
        _validate(self)


def _fail_safe_defaults(s: ServerSettings) -> None:
    """Fill each fail-safe setting not given (None): from the policy file's
    ``[fail_safe]``, else the defaults (``FailSafe()``'s, ``DEFAULT_REFUSAL``). The one
    place of that precedence: ``rain serve`` passes only the options given."""
    file = s.policy_file if isinstance(s.policy_file, Policy) else None
    safe = file.fail_safe if file is not None else FailSafe()
    found = {"policy": safe.action, "threshold": safe.threshold,
             "refusal_message": file.refusal_message if file is not None else DEFAULT_REFUSAL}
    for name, value in found.items():
        if getattr(s, name) is None:
            object.__setattr__(s, name, value)


def _fail(name: str, message: str, value: Any) -> None:
    raise ConfigError(name, f"{message}, got {value!r}")


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _validate(s: ServerSettings) -> None:
    if not isinstance(s.allowed_hosts, tuple) or not all(
            isinstance(h, str) and h.strip() for h in s.allowed_hosts):
        _fail("allowed_hosts", "must be a tuple of host names", s.allowed_hosts)
    if not isinstance(s.host, str) or not s.host.strip():
        _fail("host", "must be a host name or IP address", s.host)
    if not is_int(s.port) or not 0 <= s.port <= 65535:
        _fail("port", "must be an integer in [0, 65535]", s.port)
    _validate_tokenizer(s)
    if s.device not in DEVICES:
        _fail("device", f"must be one of {DEVICES}", s.device)
    if s.api_key is not None and (not isinstance(s.api_key, str) or not s.api_key.strip()):
        _fail("api_key", "must be a non-empty string (or unset for no authentication)",
              "<hidden>")
    if s.policy not in POLICIES:
        _fail("policy", f"must be one of {POLICIES}", s.policy)
    check_threshold(s.threshold)
    if not isinstance(s.refusal_message, str) or not s.refusal_message.strip():
        _fail("refusal_message", "must be a non-empty text", s.refusal_message)
    if s.policy_file is not None and not isinstance(s.policy_file, Policy):
        _fail("policy_file", "must be a rainlm.policy.Policy (load_policy) or None",
              s.policy_file)
    if not is_int(s.max_concurrent) or s.max_concurrent < 1:
        _fail("max_concurrent", "must be an integer >= 1", s.max_concurrent)
    if s.cache_mb is not None and (not is_number(s.cache_mb) or s.cache_mb <= 0):
        _fail("cache_mb", "must be a number of MiB > 0 (or unset for the backend's own)",
              s.cache_mb)
    if not is_int(s.queue_size) or s.queue_size < 0:
        _fail("queue_size", "must be an integer >= 0", s.queue_size)
    if not is_number(s.shutdown_timeout_s) or s.shutdown_timeout_s < 0:
        _fail("shutdown_timeout_s", "must be a number of seconds >= 0", s.shutdown_timeout_s)
    for name in ("max_time_budget_s", "default_time_budget_s"):
        value = getattr(s, name)
        if not is_number(value) or value <= 0:
            _fail(name, "must be a number of seconds > 0", value)
    if s.default_time_budget_s > s.max_time_budget_s:
        _fail("default_time_budget_s", f"must be <= max_time_budget_s "
                                       f"({s.max_time_budget_s})", s.default_time_budget_s)
    for name in ("max_new_tokens_limit", "default_max_new_tokens", "max_prompt_tokens",
                 "max_body_bytes", "retry_after_s", "max_candidates", "max_token_set_length",
                 "max_searches_limit"):
        value = getattr(s, name)
        if not is_int(value) or value < 1:
            _fail(name, "must be an integer >= 1", value)
    if s.default_max_new_tokens > s.max_new_tokens_limit:
        _fail("default_max_new_tokens", f"must be <= max_new_tokens_limit "
                                        f"({s.max_new_tokens_limit})", s.default_max_new_tokens)
    if s.preset not in PRESETS:
        _fail("preset", f"must be one of {sorted(PRESETS)}", s.preset)
    if s.embedder not in EMBEDDERS:
        _fail("embedder", f"must be one of {EMBEDDERS}", s.embedder)


def _validate_tokenizer(s: ServerSettings) -> None:
    if s.tokenizer is None:
        return
    if not isinstance(s.tokenizer, str) or not s.tokenizer.strip():
        _fail("tokenizer", "must be a folder path (or unset)", s.tokenizer)
    from rainlm.backends.loading import refuse_tokenizer, takes_tokenizer
    from rainlm.backends.openai_compat import tokenizer_folder_problem

    if not takes_tokenizer(s.model):
        raise refuse_tokenizer("the embedded model" if s.model is None else f"model {s.model!r}")
    problem = tokenizer_folder_problem(s.tokenizer)
    if problem is not None:
        raise ConfigError("tokenizer", problem)
