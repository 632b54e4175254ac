"""Errors in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``.

Handlers raise ``ApiError``; the app turns it (and any other failure) into that JSON
body with the right HTTP status, so the official ``openai`` client raises its usual
``BadRequestError`` / ``AuthenticationError`` / ``RateLimitError`` ... with our message.
"""

from __future__ import annotations

from typing import Any

from rainlm.config import SETTING_GROUP
from rainlm.errors import ConfigError

__all__ = ["ApiError", "error_body", "bad_request", "failure_body", "is_request_error",
           "TYPE_BY_STATUS"]

TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "invalid_request_error", 405: "invalid_request_error", 409: "invalid_request_error",
    413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error", 503: "server_error",
}


class ApiError(Exception):
    """An HTTP error answered in OpenAI's error format."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, param=self.param, code=self.code)


def error_type(status: int) -> str:
    """OpenAI's error type for an HTTP status: a client error (4xx) not listed in
    ``TYPE_BY_STATUS`` is an ``invalid_request_error``, a 5xx a ``server_error``."""
    return TYPE_BY_STATUS.get(status, "invalid_request_error" if 400 <= status < 500
                              else "server_error")


def error_body(status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"message": message, "type": error_type(status),
                      "param": param, "code": code}}


def bad_request(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 naming ``param``; the message starts with the field's name."""
    text = f"{param}: {message}" if param else message
    return ApiError(400, text, param=param, code=code)


def is_request_error(exc: BaseException) -> bool:
    """A ConfigError about something the request chose (a RainConfig field, the
    messages or prompt): the client's fault (400). Other ConfigErrors (a backend's
    n_ctx, a missing tokenizer) are the server's (500)."""
    if not isinstance(exc, ConfigError):
        return False
    return (exc.field in SETTING_GROUP
            or exc.field.startswith(("messages", "prompt")))


def failure_body(exc: Any) -> tuple[int, dict[str, Any]]:
    """HTTP status and OpenAI error body of a failed job (``engine.JobFailed``: its
    audit ``record`` and its ``cause``)."""
    trace_id = exc.record.id if exc.record is not None else None
    where = f" (trace {trace_id})" if trace_id else ""
    cause = exc.cause
    if is_request_error(cause):
        param = cause.field if cause.field.startswith(("messages", "prompt")) else f"rain.{cause.field}"
        return 400, error_body(400, f"{cause}{where}", param=param, code="invalid_value")
    return 500, error_body(500, f"the search failed: {type(cause).__name__}: {cause}{where}",
                           code="search_failed")
