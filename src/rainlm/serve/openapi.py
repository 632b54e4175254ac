"""The OpenAPI 3.0 description of ``rain serve`` (served at ``GET /openapi.json``).

Written from the same tables the request parser uses (``schemas.py``: the accepted
fields of each endpoint, the RAIN settings, the server's limits), so the contract a
client or a fuzzer reads is the one the server enforces. Request bodies are described
field by field; responses loosely (OpenAI's shapes plus the ``rain`` object). Pure: no
model, no I/O.
"""

from __future__ import annotations

import typing
from typing import Any, Literal, Union

from rainlm import __version__
from rainlm.config import PRESETS, setting_types
from rainlm.request import METHODS
from rainlm.serve.schemas import CHAT, COMPLETIONS, MAX_STOP
from rainlm.serve.settings import POLICIES, ServerSettings

__all__ = ["openapi_schema"]

_REF = "#/components/schemas/"
_ERRORS = {"400": "invalid request (the error names the field)", "401": "missing or wrong API key",
           "403": "a setting this server does not let requests choose",
           "404": "unknown model name", "413": "request body too large",
           "415": "Content-Type is not application/json", "429": "queue full (Retry-After)",
           "503": "the model is loading or the server is stopping (Retry-After)"}


def openapi_schema(settings: ServerSettings, *, model_name: str = "rain") -> dict[str, Any]:
    """The OpenAPI document of an app started with ``settings``."""
    security = [{"bearer": []}] if settings.api_key is not None else []
    return {
        "openapi": "3.0.3",
        "info": {"title": "rainlm", "version": __version__,
                 "description": "OpenAI-compatible RAIN server: answers are searched with "
                                "RAIN and judged; every request leaves an audit record."},
        "paths": {
            CHAT: {"post": _completion_operation("chat", "ChatCompletionRequest", security)},
            COMPLETIONS: {"post": _completion_operation("text", "CompletionRequest", security)},
            "/v1/models": {"get": _operation("The models requests may name", security,
                                             {"200": _json("ModelList")})},
            "/health": {"get": _operation(
                "200 when requests can be served; 503 while loading or stopping", [],
                {"200": _json("Health"), "503": _json("Health")})},
            "/v1/rain/traces/{trace_id}": {"get": _operation(
                "One audit record", security, {"200": _json("Object")},
                parameters=[_trace_id()])},
            "/v1/rain/traces/{trace_id}/html": {"get": _operation(
                "One audit record as an HTML page (the search tree); like /review it "
                "also takes ?key=KEY", security, {"200": _html("HTML page"), "401": _page_401()},
                parameters=[_trace_id()])},
            "/v1/rain/reviews/{trace_id}": {"post": _operation(
                "Approve or reject an answer awaiting review", security,
                {"200": _json("Object"), "409": _json("Error")}, parameters=[_trace_id()],
                body="ReviewDecision")},
            "/v1/rain/review-queue": {"get": _operation(
                "The review queue's counts (read from the store: every replica answers the "
                "same)", security, {"200": _json("ReviewQueue")})},
            "/v1/rain/review-queue/next": {"post": _operation(
                "Take the oldest answer awaiting review that no other reviewer holds; it is "
                "held for this reviewer for hold_s seconds (record null: none left)",
                security, {"200": _json("ReviewClaim")}, body="ReviewClaimRequest")},
            "/review": {"get": _operation("The review page (HTML)", security,
                                          {"200": _html("HTML page"), "401": _page_401()},
                                          parameters=[{"name": "trace", "in": "query",
                                                       "required": False,
                                                       "schema": {"type": "string"}}])},
        },
        "components": {
            "schemas": {
                "ChatCompletionRequest": _request(CHAT, settings, model_name),
                "CompletionRequest": _request(COMPLETIONS, settings, model_name),
                "Message": _message(),
                "RainSettings": _rain_settings(settings),
                "ReviewDecision": {
                    "type": "object", "additionalProperties": False, "required": ["decision"],
                    "properties": {"decision": {"type": "string",
                                                "enum": ["approved", "rejected"]},
                                   "note": {"type": "string", "nullable": True},
                                   "reviewer": {"type": "string", "nullable": True}}},
                "ReviewClaimRequest": {
                    "type": "object", "additionalProperties": False, "required": ["reviewer"],
                    "properties": {"reviewer": {"type": "string", "minLength": 1,
                                                "maxLength": 200, "pattern": "\\S"},
                                   "hold_s": {"type": "number", "exclusiveMinimum": True,
                                              "minimum": 0, "maximum": 86400}}},
                "ReviewClaim": {"type": "object", "required": ["record"], "properties": {
                    "object": {"type": "string"},
                    "record": {"type": "object", "nullable": True}}},
                "ReviewQueue": {"type": "object", "properties": {
                    name: {"type": "integer"} for name in
                    ("pending", "held", "approved", "rejected", "none")}},
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "properties": {
                        "message": {"type": "string"}, "type": {"type": "string"},
                        "param": {"type": "string", "nullable": True},
                        "code": {"type": "string", "nullable": True}}}}},
                "Health": {"type": "object", "properties": {
                    "status": {"type": "string"},
                    "refused": {"type": "object", "description": "4xx answers since the "
                                "server started, by status code",
                                "additionalProperties": {"type": "integer"}}}},
                "ModelList": {"type": "object", "properties": {
                    "object": {"type": "string"},
                    "data": {"type": "array", "items": {"type": "object"}}}},
                "Object": {"type": "object"},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _json(name: str, description: str = "") -> dict[str, Any]:
    return {"description": description or name,
            "content": {"application/json": {"schema": {"$ref": _REF + name}}}}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _page_401() -> dict[str, Any]:
    """The 401 of an HTML page: JSON, or a page saying how to pass the key when the
    client accepts text/html (a browser)."""
    out = _json("Error", _ERRORS["401"] + " (a browser gets a page saying how to pass it)")
    out["content"]["text/html"] = {"schema": {"type": "string"}}
    return out


def _trace_id() -> dict[str, Any]:
    return {"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _operation(summary: str, security: list[dict[str, Any]], responses: dict[str, Any], *,
               parameters: list[dict[str, Any]] | None = None,
               body: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": security,
                          "responses": {**responses, **{code: _json("Error", why)
                                                        for code, why in _ERRORS.items()
                                                        if code not in responses}}}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": _REF + body}}}}
    return op


def _completion_operation(kind: str, body: str, security: list[dict[str, Any]]) -> dict[str, Any]:
    what = ("A chat answer searched with RAIN" if kind == "chat"
            else "A raw text continuation searched with RAIN")
    ok = {"description": "the answer (JSON), or server-sent events with stream=true",
          "content": {"application/json": {"schema": {"$ref": _REF + "Object"}},
                      "text/event-stream": {"schema": {"type": "string"}}}}
    return _operation(what, security, {"200": ok}, body=body)


def _message() -> dict[str, Any]:
    part = {"type": "object", "required": ["type", "text"],
            "properties": {"type": {"type": "string", "enum": ["text"]},
                           "text": {"type": "string"}}}
    return {"type": "object", "additionalProperties": False, "required": ["role", "content"],
            "properties": {
                "role": {"type": "string",
                         "enum": ["system", "developer", "user", "assistant"]},
                "content": {"oneOf": [{"type": "string", "minLength": 1},
                                      {"type": "array", "items": part, "minItems": 1}]},
                "name": {"type": "string"}}}


def _request(endpoint: str, settings: ServerSettings, model_name: str) -> dict[str, Any]:
    """The request body of ``endpoint``: every field the parser accepts (others are 400)."""
    tokens = {"type": "integer", "minimum": 1, "maximum": settings.max_new_tokens_limit,
              "nullable": True}
    props: dict[str, Any] = {
        "model": {"type": "string", "nullable": True,
                  "description": f"'{model_name}' or the model's own name (GET /v1/models)"},
        "max_tokens": tokens,
        "seed": {"type": "integer", "minimum": 0, "nullable": True},
        "stop": {"nullable": True, "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string", "minLength": 1},
             "maxItems": MAX_STOP}]},
        "n": {"type": "integer", "enum": [1], "nullable": True},
        "stream": {"type": "boolean", "nullable": True},
        "stream_options": {"type": "object", "nullable": True, "additionalProperties": False,
                           "properties": {"include_usage": {"type": "boolean"}}},
        "rain": {"$ref": _REF + "RainSettings"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True,
                        "description": "accepted and ignored: the search decides"},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2, "nullable": True},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2, "nullable": True},
        "user": {"type": "string", "nullable": True},
        "logit_bias": {"type": "object", "maxProperties": 0, "nullable": True},
    }
    if endpoint == CHAT:
        props.update({
            "messages": {"type": "array", "minItems": 1, "items": {"$ref": _REF + "Message"}},
            "max_completion_tokens": tokens,
            "logprobs": {"type": "boolean", "enum": [False], "nullable": True},
            "top_logprobs": {"type": "integer", "nullable": True,
                             "description": "not supported: must be absent or null"}})
        required = ["messages"]
    else:
        props.update({
            "prompt": {"oneOf": [{"type": "string", "minLength": 1},
                                 {"type": "array", "minItems": 1, "maxItems": 1,
                                  "items": {"type": "string", "minLength": 1}}]},
            "logprobs": {"type": "integer", "nullable": True,
                         "description": "not supported: must be absent or null"},
            "echo": {"type": "boolean", "enum": [False], "nullable": True},
            "suffix": {"type": "string", "maxLength": 0, "nullable": True},
            "best_of": {"type": "integer", "enum": [1], "nullable": True}})
        required = ["prompt"]
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": props}


def _rain_settings(settings: ServerSettings) -> dict[str, Any]:
    """The ``rain`` object: the server keys and every RainConfig field, with its type
    (its docstring is in ``rainlm.config``; ranges are checked by the server)."""
    props: dict[str, Any] = {
        "preset": {"type": "string", "enum": sorted(PRESETS)},
        "method": {"type": "string", "enum": list(METHODS)},
        "policy": {"type": "string", "enum": list(POLICIES),
                   "description": "only with --allow-request-policy (else 403)"},
        "threshold": {"type": "number", "minimum": -1, "maximum": 1,
                      "description": "only with --allow-request-policy (else 403)"},
        "seed": {"type": "integer", "minimum": 0},
    }
    for name, hint in setting_types().items():
        props[name] = _type_schema(hint)
    props["time_budget_s"] = {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                              "maximum": settings.max_time_budget_s, "nullable": True}
    return {"type": "object", "nullable": True, "additionalProperties": False,
            "properties": props}


def _type_schema(hint: Any) -> dict[str, Any]:
    """A JSON schema for a RainConfig annotation (bool, int, float, str, Literal, tuples,
    and ``X | None``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        rest = [a for a in args if a is not type(None)]
        inner = _type_schema(rest[0]) if len(rest) == 1 else {}
        return {**inner, "nullable": True}
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0])}
    return {bool: {"type": "boolean"}, int: {"type": "integer"}, float: {"type": "number"},
            str: {"type": "string"}}.get(hint, {})
