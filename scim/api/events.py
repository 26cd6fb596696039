"""The receivers' endpoints: the keys SETs are signed with, and the poll endpoint.

``GET /events/jwks.json`` is public (RFC 7517 key set). ``POST /events/poll`` (RFC 8936) is
for poll receivers, each with the bearer token ``scim receiver add --poll`` printed once.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from scim.auth.tokens import token_hash
from scim.events.delivery import Transmitter
from scim.events.signing import JWKS_PATH
from scim.storage import events as stored

AnyRequest = Request[Any, Any, Any]
_JSON = "application/json"
# A SET is at most a few hundred bytes; so is the list of what a receiver acknowledges.
_MAX_POLL_BODY = 1024 * 1024
_MAX_EVENTS = 1000


class _SetError(msgspec.Struct, forbid_unknown_fields=False):
    err: str
    description: str = ""


class PollRequest(msgspec.Struct, forbid_unknown_fields=False):
    """RFC 8936 §2.2."""

    ack: list[str] = []
    setErrs: dict[str, _SetError] = {}
    maxEvents: int | None = None
    returnImmediately: bool = False


def _error(status: int, description: str, headers: dict[str, str] | None = None) -> Response[Any]:
    """RFC 8935 §2.3's error body, as RFC 8936 §2.5.1 leaves it to the transmitter."""
    return Response(
        {
            "err": "authentication_failed" if status == 401 else "invalid_request",
            "description": description,
        },
        status_code=status,
        media_type=_JSON,
        headers=headers,
    )


@get(JWKS_PATH, name="event-keys", cache=False)
async def event_keys(request: AnyRequest) -> Response[Any]:
    """The public keys that verify SETs; a receiver looks a SET's ``kid`` up here."""
    transmitter: Transmitter = request.app.state.transmitter
    signer = await transmitter.signer()
    return Response(
        signer.jwks(),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


@post("/events/poll", name="event-poll", status_code=200)
async def poll(request: AnyRequest) -> Response[Any]:
    """RFC 8936: acknowledge SETs and fetch the next ones."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="scim-events"'}
    if scheme.lower() != "bearer" or not token.strip():
        return _error(401, "A poll receiver's bearer token is required", challenge)
    transmitter: Transmitter = request.app.state.transmitter
    async with transmitter.reads.connect() as connection:
        receiver = await stored.receiver_by_token(connection, token_hash(token.strip()))
    if receiver is None:
        return _error(401, "Unknown or removed receiver token", challenge)
    body = await request.body()
    if len(body) > _MAX_POLL_BODY:
        return _error(413, "The poll request is too large")
    try:
        wanted = msgspec.json.decode(body or b"{}", type=PollRequest)
    except msgspec.DecodeError as error:
        return _error(400, f"Not a poll request (RFC 8936 §2.2): {error}")
    if wanted.maxEvents is not None and not 0 <= wanted.maxEvents <= _MAX_EVENTS:
        return _error(400, f"maxEvents must be between 0 and {_MAX_EVENTS}")
    errors = {
        token_id: f"{problem.err}: {problem.description}".rstrip(": ")
        for token_id, problem in wanted.setErrs.items()
    }
    sets, more = await transmitter.poll(
        receiver, wanted.ack, errors, wanted.maxEvents, wanted.returnImmediately
    )
    return Response({"sets": sets, "moreAvailable": more}, media_type=_JSON)
