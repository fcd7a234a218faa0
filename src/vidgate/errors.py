"""The one exception type every layer raises for a client-visible failure.

The HTTP layer renders it in the shape of the family that received the request.
"""

from __future__ import annotations

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        # any other client error (405, 416, ...) is still the client's, never a server_error
        self.type = type or _TYPE_BY_STATUS.get(
            status, "invalid_request_error" if status < 500 else "server_error")
        self.headers = headers or {}


def invalid(message: str, *, param: str | None = None, code: str = "invalid_request") -> ApiError:
    return ApiError(400, code, message, param=param)


def not_found(what: str = "video") -> ApiError:
    return ApiError(404, "task_not_exist", f"No {what} found with that id.")


def expired() -> ApiError:
    """A finished task whose assets were removed (retention) or are missing from the store."""
    return ApiError(410, "video_expired", "The video's assets are no longer available.")
