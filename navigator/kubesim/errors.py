"""API errors carried as exceptions and rendered as real ``meta/v1 Status`` bodies."""

from __future__ import annotations

from typing import Any

import orjson

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    """Raised anywhere in request handling; the server turns it into a Status response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason if reason is not None else REASONS.get(code, "")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)

    def body(self) -> bytes:
        return orjson.dumps(self.status())

    # Constructors matching k8s.io/apimachinery/pkg/api/errors.

    @classmethod
    def not_found(cls, details: dict[str, str]) -> ApiError:
        res = details["kind"] + (f".{details['group']}" if details.get("group") else "")
        return cls(404, f'{res} "{details["name"]}" not found', "NotFound", details)

    @classmethod
    def not_found_type(cls, name: str) -> ApiError:
        return cls(404, f'the server could not find the requested resource ({name})', "NotFound")

    @classmethod
    def already_exists(cls, details: dict[str, str]) -> ApiError:
        res = details["kind"] + (f".{details['group']}" if details.get("group") else "")
        return cls(409, f'{res} "{details["name"]}" already exists', "AlreadyExists", details)

    @classmethod
    def conflict(cls, details: dict[str, str], why: str) -> ApiError:
        res = details["kind"] + (f".{details['group']}" if details.get("group") else "")
        return cls(409, f'Operation cannot be fulfilled on {res} "{details["name"]}": {why}', "Conflict", details)

    @classmethod
    def invalid(cls, kind: str, name: str, field: str, why: str, reason: str = "FieldValueRequired") -> ApiError:
        cause = {"reason": reason, "message": why, "field": field}
        return cls(
            422,
            f'{kind} "{name}" is invalid: {field}: {why}',
            "Invalid",
            {"name": name, "kind": kind, "causes": [cause]} if name else {"kind": kind, "causes": [cause]},
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, message, "BadRequest")

    @classmethod
    def expired(cls, message: str) -> ApiError:
        return cls(410, message, "Expired")

    @classmethod
    def method_not_allowed(cls) -> ApiError:
        return cls(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")
