"""SCIM errors (RFC 7644 §3.12): their conversion from validation failures, and the one
place their body is written.

The error classes are scim2-models' own (each carries ``status`` and
``scim_type``); this module only turns what can go wrong into one of them.
"""

from __future__ import annotations

from typing import Any

import msgspec
from pydantic import ValidationError
from scim2_models import (
    InvalidSyntaxException,
    InvalidValueException,
    SCIMException,
)

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_MEDIA_TYPE = "application/scim+json"


class UnsupportedMediaType(SCIMException):
    status = 415
    _default_detail = "The request body must be application/scim+json or application/json"


def with_status(status: int, detail: str) -> SCIMException:
    """An error of a status scim2-models has no class for (500, 503, or an HTTP error)."""
    error = SCIMException(detail=detail)
    error.status = status
    return error


def internal() -> SCIMException:
    return with_status(500, "Internal server error")


def unavailable() -> SCIMException:
    """RFC 9110 §15.6.4: temporary; the client may try again shortly."""
    return with_status(503, "The database is unavailable; try again shortly")


def from_validation(error: ValidationError) -> SCIMException:
    """The SCIM error a pydantic validation failure stands for."""
    first: Any = error.errors()[0]
    context = first.get("ctx") or {}
    location = ".".join(_attribute_name(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    if context.get("scim_type"):
        exception = with_status(int(context.get("status", 400)), message)
        exception.scim_type = str(context["scim_type"])
        return exception
    if first.get("type") == "extra_forbidden":
        return InvalidSyntaxException(detail=f"Unknown attribute {location!r}")
    if location:
        message = f"{location}: {message}"
    return InvalidValueException(detail=message)


def _attribute_name(part: Any) -> str:
    """A pydantic location part as SCIM names the attribute: nick_name -> nickName."""
    head, *rest = str(part).split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def error_document(error: SCIMException, **more: Any) -> dict[str, Any]:
    """RFC 7644 §3.12: the error as a response (or a Bulk operation's ``response``) shows it,
    with ``more`` members (the browser client's Swedish ``message``)."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(error.status)}
    if error.scim_type:
        body["scimType"] = error.scim_type
    body["detail"] = error.detail
    return {**body, **more}


def error_body(error: SCIMException, **more: Any) -> bytes:
    return msgspec.json.encode(error_document(error, **more))
