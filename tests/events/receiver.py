"""A push receiver of security events (RFC 8935), as an e-service would run one: a real HTTP
server on loopback that verifies every SET against the published JWKS before taking it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws
from joserfc.jwk import KeySet

SET_TYPE = "secevent+jwt"


def verify(token: str, jwks_url: str, keys: dict[str, KeySet]) -> dict[str, Any]:
    """A SET's claims once its signature, ``typ`` and ``kid`` check out against the keys at
    ``jwks_url`` (fetched again for a ``kid`` not seen before: keys rotate)."""
    header = jws.extract_compact(token.encode()).headers()
    if header.get("typ") != SET_TYPE:
        raise ValueError(f"typ is {header.get('typ')!r}")
    if header.get("alg") not in ("ES256", "RS256"):
        raise ValueError(f"alg is {header.get('alg')!r}")
    kid = header.get("kid")
    key_set = keys.get("current")
    if key_set is None or not any(k.kid == kid for k in key_set.keys):
        key_set = KeySet.import_key_set(httpx.get(jwks_url, timeout=5).json())
        keys["current"] = key_set
    signed = jws.deserialize_compact(token, key_set, algorithms=["ES256", "RS256"])
    claims: dict[str, Any] = json.loads(signed.payload)
    return claims


@dataclass
class Received:
    token: str
    claims: dict[str, Any]
    at: float


@dataclass
class Receiver:
    """What the receiver took, and how it answers: ``answer`` returns (status, JSON body)
    for each SET, or None to verify and accept it (202)."""

    jwks_url: str
    issuer: str
    audience: str
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None
    keys: dict[str, KeySet] = field(default_factory=dict)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        status, reply = 202, None
        if headers.get(b"content-type") != b"application/secevent+jwt":
            status, reply = 400, {"err": "invalid_request", "description": "not a SET"}
        else:
            try:
                claims = await asyncio.to_thread(verify, body.decode(), self.jwks_url, self.keys)
            except Exception as error:
                self.refused.append(str(error))
                status, reply = 400, {"err": "invalid_key", "description": str(error)}
            else:
                if claims.get("iss") != self.issuer:
                    status, reply = 400, {"err": "invalid_issuer", "description": "issuer"}
                elif claims.get("aud") != self.audience:
                    status, reply = 400, {"err": "invalid_audience", "description": "aud"}
                else:
                    answered = self.answer(claims) if self.answer else None
                    if answered is not None:
                        status, reply = answered
                    else:
                        with self.arrived:
                            self.received.append(Received(body.decode(), claims, time.time()))
                            self.arrived.notify_all()
        payload = b"" if reply is None else json.dumps(reply).encode()
        response_headers = [(b"content-type", b"application/json")] if reply else []
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """The SETs taken, once there are ``count`` of them (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(self.received)} of {count} SETs arrived; refused: {self.refused}"
                    )
                self.arrived.wait(left)
            return list(self.received)
