"""The keys Security Event Tokens are signed with, and the JWKS that publishes them.

RFC 8417 §5.1: a SET is signed (JWS, RFC 7515) unless something else ensures its integrity;
its ``typ`` is ``secevent+jwt`` (§2.3). A receiver verifies it with the keys published at
``JWKS_PATH`` (RFC 7517), found by ``kid`` (the key's RFC 7638 thumbprint).

Keys come from ``SCIM_EVENT_KEYS``: PEM files of EC P-256 (ES256) or RSA (RS256) private
keys, the first of which signs. The others are still published, so that a key is rotated
by putting the new one first and dropping the old one once no receiver needs it: SETs are
signed when they are sent, so no pending event is lost to a rotation. With no keys set, one
P-256 key is drawn once and kept in the database, shared by every worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage.tables import signing_keys

JWKS_PATH = "/events/jwks.json"
_DATABASE_KEY = "default"
SET_TYPE = "secevent+jwt"

Key = ECKey | RSAKey


class KeyError_(ValueError):
    """A configured key that cannot sign SETs."""


def import_key(pem: bytes) -> Key:
    """A private key from PEM: EC on P-256, or RSA of 2048 bits or more."""
    private = load_pem_private_key(pem, password=None)
    if isinstance(private, ec.EllipticCurvePrivateKey):
        if private.curve.name != "secp256r1":
            raise KeyError_(f"EC keys must be on P-256, not {private.curve.name}")
        return ECKey.import_key(pem)
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise KeyError_("RSA keys must have 2048 bits or more")
        return RSAKey.import_key(pem)
    raise KeyError_("keys must be EC (P-256) or RSA")


def new_key() -> ECKey:
    return ECKey.generate_key("P-256", private=True)


class Signer:
    """Signs SETs with the first key; publishes all."""

    def __init__(self, keys: Sequence[Key]) -> None:
        if not keys:
            raise KeyError_("no signing key")
        self.keys = list(keys)
        self.key = self.keys[0]
        self.kid = self.key.thumbprint()
        self.algorithm = "ES256" if isinstance(self.key, ECKey) else "RS256"

    def sign(self, payload: bytes) -> str:
        header = {"alg": self.algorithm, "typ": SET_TYPE, "kid": self.kid}
        return jws.serialize_compact(header, payload, self.key, algorithms=[self.algorithm])

    def jwks(self) -> dict[str, Any]:
        """RFC 7517 §5: the public keys, each with its ``kid``, ``use`` and ``alg``."""
        published = []
        for key in self.keys:
            entry = dict(key.as_dict(private=False))
            entry["kid"] = key.thumbprint()
            entry["use"] = "sig"
            entry["alg"] = "ES256" if isinstance(key, ECKey) else "RS256"
            published.append(entry)
        return {"keys": published}


async def load_signer(paths: Sequence[str], engine: AsyncEngine) -> Signer:
    """The keys ``paths`` name, else the database's own key (drawn the first time: of
    workers starting together, the first to write it wins, and all read that one)."""
    if paths:
        return Signer([import_key(Path(path).read_bytes()) for path in paths])
    stored = select(signing_keys.c.pem).where(signing_keys.c.name == _DATABASE_KEY)
    async with engine.connect() as connection:
        pem = (await connection.execute(stored)).scalar()
    if pem is None:
        drawn = new_key().as_pem(private=True).decode()
        with suppress(IntegrityError):
            async with engine.begin() as connection:
                await connection.execute(
                    insert(signing_keys).values(
                        name=_DATABASE_KEY, pem=drawn, created=datetime.now(UTC)
                    )
                )
        async with engine.connect() as connection:
            pem = (await connection.execute(stored)).scalar_one()
    return Signer([import_key(pem.encode())])


def jti() -> str:
    return uuid.uuid4().hex
