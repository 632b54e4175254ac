"""Errors in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``.

Handlers raise ``ApiError``; the app turns it (and any other failure) into that JSON
body with the right HTTP status, so the official ``openai`` client raises its usual
``BadRequestError`` / ``AuthenticationError`` / ``RateLimitError`` ... with our message.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "error_body", "bad_request", "TYPE_BY_STATUS"]

TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "invalid_request_error", 405: "invalid_request_error", 409: "invalid_request_error",
    413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
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


def error_body(status: int, message: str, *, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"message": message, "type": TYPE_BY_STATUS.get(status, "server_error"),
                      "param": param, "code": code}}


def bad_request(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 naming ``param``; the message starts with the field's name."""
    text = f"{param}: {message}" if param else message
    return ApiError(400, text, param=param, code=code)
