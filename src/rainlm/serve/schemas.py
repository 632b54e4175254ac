"""Request parsing: an OpenAI request body (bytes) -> a validated ``ParsedRequest``.

Hand-written rather than pydantic so every error names the exact field the way the
OpenAI API does (``messages[1].content``, ``rain.time_budget_s``). Pure functions: no
model, no I/O.

Accepted and ignored (documented in ``rain serve --help``): ``temperature``, ``top_p``,
``presence_penalty``, ``frequency_penalty``, ``user``, ``logit_bias`` — RAIN's search
decides the sampling itself. Validated anyway, so a typo'd value still gets a 400.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from typing import Any

from rainlm.config import PRESETS, SETTING_GROUP, RainConfig, setting_types
from rainlm.errors import ConfigError
from rainlm.request import METHODS, GenerationParams
from rainlm.serve.errors import ApiError, bad_request
from rainlm.serve.settings import POLICIES, ServerSettings, is_int, is_number

__all__ = ["ParsedRequest", "parse_body", "parse_request", "CHAT", "COMPLETIONS",
           "RAIN_CONFIG_FIELDS"]

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MAX_STOP = 4  # OpenAI's limit on stop sequences
RAIN_CONFIG_FIELDS = tuple(SETTING_GROUP)
_TUPLE_FIELDS = tuple(name for name, hint in setting_types().items()
                      if typing.get_origin(hint) is tuple)
_RAIN_SERVER_KEYS = ("preset", "method", "policy", "threshold", "seed")

_COMMON = {"model", "max_tokens", "seed", "stop", "n", "stream", "stream_options", "rain",
           "temperature", "top_p", "presence_penalty", "frequency_penalty", "user",
           "logit_bias", "logprobs"}
_KNOWN = {CHAT: _COMMON | {"messages", "max_completion_tokens", "top_logprobs"},
          COMPLETIONS: _COMMON | {"prompt", "echo", "suffix", "best_of"}}
_CHAT_ROLES = {"system": "system", "developer": "system", "user": "user",
               "assistant": "assistant"}


@dataclass(frozen=True)
class ParsedRequest:
    """One validated completion request."""

    endpoint: str
    """``CHAT`` or ``COMPLETIONS``."""
    body: dict[str, Any]
    """The JSON body as received (recorded in the audit trail)."""
    messages: tuple[dict[str, str], ...]
    """Chat messages with plain-text content (a completion prompt is one user turn)."""
    params: GenerationParams
    """What the answer is asked to be: method ("rain", or "greedy": plain decoding, still
    scored and audited), the effective search config, seed, length limit, and
    ``continuation`` (True for /v1/completions, which continues its prompt text as is,
    OpenAI's and vLLM's meaning; chat requests go through the model's chat template)."""
    stream: bool
    include_usage: bool
    """``stream_options.include_usage``: send a last chunk with usage (streaming)."""
    policy: str
    threshold: float
    model: str | None
    """The model the client named (the app answers 404 for a name it does not serve)."""

    @property
    def prompt(self) -> str | list[dict[str, str]]:
        """What ``answer()`` answers: the text to continue, or the chat messages."""
        return self.messages[-1]["content"] if self.params.continuation else list(self.messages)


# --------------------------------------------------------------------------- helpers
def _type_error(param: str, expected: str, value: Any) -> ApiError:
    return bad_request(param, f"must be {expected}, got {type(value).__name__} {value!r:.80}",
                       code="invalid_type")


def _int_in(body: dict[str, Any], key: str, lo: int, hi: int, param: str | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    param = param or key
    if not is_int(value):
        raise _type_error(param, "an integer", value)
    if not lo <= value <= hi:
        raise bad_request(param, f"must be in [{lo}, {hi}], got {value}")
    return value


def _number_in(body: dict[str, Any], key: str, lo: float, hi: float,
               param: str | None = None) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    param = param or key
    if not is_number(value):
        raise _type_error(param, "a finite number", value)
    if not lo <= value <= hi:
        raise bad_request(param, f"must be in [{lo}, {hi}], got {value}")
    return float(value)


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _type_error(key, "true or false", value)
    return value


# --------------------------------------------------------------------------- body
def parse_body(raw: bytes, settings: ServerSettings) -> dict[str, Any]:
    """The JSON object in ``raw``; 413 when too big, 400 when not a JSON object."""
    if len(raw) > settings.max_body_bytes:
        raise ApiError(413, f"request body is larger than this server's limit of "
                            f"{settings.max_body_bytes} bytes", code="request_too_large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON ({exc}); send a JSON object",
                       code="invalid_json") from None
    except RecursionError:
        raise ApiError(400, "request body nests too deeply to read; send a flat JSON object",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(body).__name__}",
                       code="invalid_json")
    _check_text(body, "")
    return body


MAX_DEPTH = 32
"""Deepest nesting of objects and lists a request body may have."""


def _check_text(value: Any, path: str, depth: int = 0) -> None:
    """400 naming the field for a body nested deeper than MAX_DEPTH or holding a lone
    surrogate (``\\ud800`` as a JSON escape: not text, and not storable as UTF-8)."""
    if depth > MAX_DEPTH:
        raise ApiError(400, f"{path or 'body'}: nests deeper than {MAX_DEPTH} levels",
                       param=path or None, code="invalid_json")
    if isinstance(value, str):
        if _has_lone_surrogate(value):
            raise bad_request(path or "body", "holds a lone UTF-16 surrogate (e.g. \\ud800), "
                                              "which is not text; send valid Unicode")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _has_lone_surrogate(key):
                raise bad_request(path or "body", "has a field name with a lone UTF-16 surrogate")
            _check_text(item, where, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{path}[{i}]", depth + 1)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_request(body: dict[str, Any], endpoint: str, settings: ServerSettings) -> ParsedRequest:
    """Validate an OpenAI request body against the server's limits."""
    for key in body:
        if key not in _KNOWN[endpoint]:
            raise bad_request(key, f"unrecognized request argument; this endpoint accepts "
                                   f"{sorted(_KNOWN[endpoint])}", code="unknown_parameter")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _type_error("model", "a string", model)
    messages = _chat_messages(body) if endpoint == CHAT else _completion_prompt(body)
    _check_ignored(body, endpoint)
    n = _int_in(body, "n", 1, 128)
    if n not in (None, 1):
        raise bad_request("n", f"only n=1 is supported (one answer per request), got {n}",
                          code="unsupported_value")
    stream = _bool(body, "stream", False)
    include_usage = _stream_options(body)
    max_new_tokens = _max_tokens(body, settings)
    rain = body.get("rain")
    if rain is None:
        rain = {}
    if not isinstance(rain, dict):
        raise _type_error("rain", "an object of RAIN settings", rain)
    preset, method, policy, threshold, rain_seed = _rain_server_keys(rain, settings)
    config = _rain_config(rain, preset, _stop_strings(body), settings)
    seed = rain_seed if rain_seed is not None else _int_in(body, "seed", 0, 2**63 - 1)
    params = GenerationParams(method=method, config=config, seed=0 if seed is None else seed,
                              max_new_tokens=max_new_tokens,
                              continuation=endpoint == COMPLETIONS)
    return ParsedRequest(endpoint=endpoint, body=body, messages=messages, params=params,
                         stream=stream,
                         include_usage=include_usage, policy=policy, threshold=threshold,
                         model=model)


def _check_ignored(body: dict[str, Any], endpoint: str) -> None:
    """Fields accepted for compatibility and ignored; still type- and range-checked."""
    _number_in(body, "temperature", 0.0, 2.0)
    _number_in(body, "top_p", 0.0, 1.0)
    _number_in(body, "presence_penalty", -2.0, 2.0)
    _number_in(body, "frequency_penalty", -2.0, 2.0)
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise _type_error("user", "a string", body["user"])
    if body.get("logit_bias") not in (None, {}):
        raise bad_request("logit_bias", "is not supported (RAIN chooses tokens by search)",
                          code="unsupported_value")
    if endpoint == CHAT:
        if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
            raise bad_request("logprobs", "is not supported", code="unsupported_value")
    else:
        if body.get("logprobs") is not None:
            raise bad_request("logprobs", "is not supported", code="unsupported_value")
        if body.get("echo") not in (None, False):
            raise bad_request("echo", "is not supported", code="unsupported_value")
        if body.get("suffix") not in (None, ""):
            raise bad_request("suffix", "is not supported", code="unsupported_value")
        if body.get("best_of") not in (None, 1):
            raise bad_request("best_of", "only best_of=1 is supported", code="unsupported_value")


def _stream_options(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise _type_error("stream_options", "an object", opts)
    for key in opts:
        if key != "include_usage":
            raise bad_request(f"stream_options.{key}", "unrecognized option",
                              code="unknown_parameter")
    value = opts.get("include_usage", False)
    if not isinstance(value, bool):
        raise _type_error("stream_options.include_usage", "true or false", value)
    return value


def _max_tokens(body: dict[str, Any], settings: ServerSettings) -> int:
    limit = settings.max_new_tokens_limit
    value = None
    for key in ("max_tokens", "max_completion_tokens"):  # the newer name wins
        if body.get(key) is not None:
            value = body[key]
            if not is_int(value):
                raise _type_error(key, "an integer", value)
            if not 1 <= value <= limit:
                raise bad_request(key, f"must be in [1, {limit}] (this server's "
                                       f"--max-new-tokens-limit), got {value}")
    return settings.default_max_new_tokens if value is None else value


def _stop_strings(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise _type_error("stop", "a string or a list of strings", stop)
    if len(items) > MAX_STOP:
        raise bad_request("stop", f"at most {MAX_STOP} stop sequences, got {len(items)}")
    if any(not s for s in items):
        raise bad_request("stop", "stop sequences must be non-empty strings")
    return tuple(items)


# ----------------------------------------------------------------------- messages
def _text_of(content: Any, param: str) -> str:
    """Message content: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            where = f"{param}[{j}]"
            if not isinstance(part, dict):
                raise _type_error(where, "a content part object", part)
            if part.get("type") != "text":
                raise bad_request(f"{where}.type", f"only 'text' content parts are supported, "
                                                   f"got {part.get('type')!r}",
                                  code="unsupported_value")
            if not isinstance(part.get("text"), str):
                raise _type_error(f"{where}.text", "a string", part.get("text"))
            parts.append(part["text"])
        text = "".join(parts)
    else:
        raise _type_error(param, "a string or a list of text parts", content)
    if not text.strip():
        raise bad_request(param, "is empty; give the text of the message")
    return text


def _chat_messages(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    raw = body.get("messages")
    if raw is None:
        raise bad_request("messages", "is required", code="missing_required_parameter")
    if not isinstance(raw, list):
        raise _type_error("messages", "a list of messages", raw)
    if not raw:
        raise bad_request("messages", "is empty; give at least one user message")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _type_error(f"messages[{i}]", "an object with 'role' and 'content'", m)
        for key in m:
            if key not in ("role", "content", "name"):
                raise bad_request(f"messages[{i}].{key}", "unrecognized message field "
                                  "(role, content and name are supported)",
                                  code="unknown_parameter")
        role = m.get("role")
        if not isinstance(role, str) or role not in _CHAT_ROLES:
            raise bad_request(f"messages[{i}].role", f"must be one of "
                              f"{sorted(_CHAT_ROLES)}, got {role!r}")
        if "content" not in m:
            raise bad_request(f"messages[{i}].content", "is required",
                              code="missing_required_parameter")
        out.append({"role": _CHAT_ROLES[role],
                    "content": _text_of(m["content"], f"messages[{i}].content")})
    if not any(m["role"] == "user" for m in out):
        raise bad_request("messages", "has no user message")
    return tuple(out)


def _completion_prompt(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("prompt", "is required", code="missing_required_parameter")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise bad_request("prompt", "must be a string (or a list of exactly one string; "
                                        "token-id prompts and batches are not supported)",
                              code="unsupported_value")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _type_error("prompt", "a string", prompt)
    if not prompt.strip():
        raise bad_request("prompt", "is empty; give the text to complete")
    return ({"role": "user", "content": prompt},)


# --------------------------------------------------------------------------- rain
def _rain_server_keys(rain: dict[str, Any], settings: ServerSettings
                      ) -> tuple[str, str, str, float, int | None]:
    for key in rain:
        if key not in _RAIN_SERVER_KEYS and key not in RAIN_CONFIG_FIELDS:
            raise bad_request(f"rain.{key}", f"unknown RAIN setting; known: "
                                             f"{sorted(_RAIN_SERVER_KEYS + RAIN_CONFIG_FIELDS)}",
                              code="unknown_parameter")
    preset = rain.get("preset", settings.preset)
    if not isinstance(preset, str) or preset not in PRESETS:
        raise bad_request("rain.preset", f"must be one of {sorted(PRESETS)}, got {preset!r}")
    method = rain.get("method", "rain")
    if not isinstance(method, str) or method not in METHODS:
        raise bad_request("rain.method", f"must be one of {list(METHODS)}, got {method!r}")
    policy, threshold = settings.policy, settings.threshold
    for key in ("policy", "threshold"):
        if key in rain and not settings.allow_request_policy:
            raise ApiError(403, f"rain.{key}: this server does not let requests choose the "
                                f"fail-safe policy (start it with --allow-request-policy)",
                           param=f"rain.{key}", code="policy_not_allowed")
    if rain.get("policy") is not None:
        policy = rain["policy"]
        if not isinstance(policy, str) or policy not in POLICIES:
            raise bad_request("rain.policy", f"must be one of {list(POLICIES)}, got {policy!r}")
    if rain.get("threshold") is not None:
        threshold = _number_in(rain, "threshold", -1.0, 1.0, param="rain.threshold")
    if not settings.allow_request_judge:
        for key in JUDGE_FIELDS:
            if key in rain:
                raise _judge_not_allowed(f"rain.{key}")
        if PRESETS[preset].judging.rubric != PRESETS[settings.preset].judging.rubric:
            raise _judge_not_allowed("rain.preset", f" (preset {preset!r} judges with the "
                                                    f"{PRESETS[preset].judging.rubric!r} rubric)")
    seed = _int_in(rain, "seed", 0, 2**63 - 1, param="rain.seed")
    return preset, method, policy, float(threshold), seed


CANDIDATE_KNOBS = ("num_candidates", "candidate_draws", "single_token_top_k", "candidate_top_k",
                   "widening_max_children", "widening_samples", "parallel_leaves",
                   "answer_checks")
"""Request-set RAIN fields bounded by ``--max-candidates``: candidates paid for in every
expansion, and ``answer_checks``, judged prefixes paid for per checked whole answer."""
SEARCH_KNOBS = ("max_searches", "min_new_searches", "max_searches_per_step",
                "max_total_searches", "early_stop_visits")
"""Request-set RAIN fields bounded by ``--max-searches-limit``."""


def _check_cost_knobs(overrides: dict[str, Any], settings: ServerSettings) -> None:
    """400 naming the field for a cost knob above this server's limit."""
    limits = {**{k: (settings.max_candidates, "--max-candidates") for k in CANDIDATE_KNOBS},
              **{k: (settings.max_searches_limit, "--max-searches-limit") for k in SEARCH_KNOBS}}
    for key, (limit, flag) in limits.items():
        value = overrides.get(key)
        if is_number(value) and value > limit:
            raise bad_request(f"rain.{key}", f"must be <= {limit} (this server's {flag}), got {value}")
    lengths = overrides.get("token_set_lengths")
    if isinstance(lengths, tuple) and any(is_number(x) and x > settings.max_token_set_length
                                          for x in lengths):
        raise bad_request("rain.token_set_lengths", f"entries must be <= "
                                                    f"{settings.max_token_set_length} (this server's "
                                                    f"--max-token-set-length), got {list(lengths)}")


JUDGE_FIELDS = ("rubric", "scoring", "judge_orders")
"""RainConfig fields that decide how the search judges (request-chosen only when allowed)."""


def _judge_not_allowed(param: str, why: str = "") -> ApiError:
    return ApiError(403, f"{param}: this server does not let requests choose how answers "
                         f"are judged{why} (start it with --allow-request-judge)",
                    param=param, code="judge_not_allowed")


def _rain_config(rain: dict[str, Any], preset: str, stops: tuple[str, ...],
                 settings: ServerSettings) -> RainConfig:
    overrides: dict[str, Any] = {}
    for key, value in rain.items():
        if key not in RAIN_CONFIG_FIELDS:
            continue
        if key in _TUPLE_FIELDS and isinstance(value, list):
            value = tuple(value)
        overrides[key] = value
    if "rubric" in overrides:
        from rainlm.judge.rubric import list_rubrics

        names = list(list_rubrics())
        if overrides["rubric"] not in names:  # no file paths: a request cannot read files
            raise bad_request("rain.rubric", f"must be a built-in rubric {names}, "
                                             f"got {overrides['rubric']!r}")
    _check_cost_knobs(overrides, settings)
    budget = overrides.get("time_budget_s")
    if budget is None:
        overrides["time_budget_s"] = settings.default_time_budget_s
    elif not is_number(budget) or budget <= 0:
        raise bad_request("rain.time_budget_s", f"must be a number of seconds > 0, got {budget!r}")
    elif budget > settings.max_time_budget_s:
        raise bad_request("rain.time_budget_s", f"must be <= {settings.max_time_budget_s} "
                                                f"(this server's --max-time-budget), got {budget}")
    try:
        config = RainConfig.preset(preset, **overrides)
        if stops:
            config = config.replace(stop_strings=config.answers.stop_strings + stops)
    except ConfigError as exc:
        param = "stop" if exc.field == "stop_strings" and stops else f"rain.{exc.field}"
        raise bad_request(param, str(exc).split(": ", 1)[-1]) from None
    except TypeError as exc:  # e.g. a dict where a number belongs, caught by comparisons
        raise bad_request("rain", f"a RAIN setting has the wrong type ({exc})",
                          code="invalid_type") from None
    return config
