"""What the agency's operator does: organisations, agreements, administrators, system
clients and tokens. The ``scim`` CLI and the demo data use these; each writes an audit record."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim import hooks
from scim.auth import verified
from scim.auth.tokens import new_token, token_hash
from scim.events.changes import tenant_changed
from scim.events.receivers import push_url_problem
from scim.hooks import Domain
from scim.storage import audit, identities
from scim.storage import events as stored_events

DEFAULT_CLIENT = "SCIM-klient"
# Actions after which a principal a worker keeps may be wrong (``scim.auth.verified``): it
# may name a revoked token, a removed administrator, a certificate now matching another
# registration, or agreements that ended.
CHANGE_WHO_MAY_CALL = frozenset(
    {
        "agreements.set",
        "administrator.add",
        "administrator.remove",
        "client.register",
        "token.revoke",
    }
)


class OperatorError(Exception):
    """An operator request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Tenant:
    id: int
    org_number: str
    name: str
    kind: str


@asynccontextmanager
async def operating(
    engine: AsyncEngine, actor: str = "operator", domain: Domain | None = None
) -> AsyncIterator[Operator]:
    """An Operator in one transaction. When it has changed who may call, every worker has
    forgotten what it kept by the time this returns (``verified.confirm``); how many did
    not answer is then in ``unconfirmed``."""
    async with engine.begin() as connection:
        operator = Operator(connection, actor, domain)
        yield operator
    if operator.credentials_changed:
        operator.unconfirmed = await verified.confirm(engine)


class Operator:
    """Operator actions on one connection (one transaction), recorded as ``actor``."""

    def __init__(
        self, connection: AsyncConnection, actor: str = "operator", domain: Domain | None = None
    ) -> None:
        self.connection = connection
        self.actor = actor
        # What organisation numbers, kinds and people's ids must look like.
        self.domain = domain or Domain()
        self.credentials_changed = False
        self.unconfirmed = 0  # workers that did not confirm it (``operating``)

    async def _audit(self, tenant_id: int | None, action: str, **details: Any) -> None:
        await audit.record(
            self.connection, tenant_id=tenant_id, actor=self.actor, action=action, **details
        )
        if action in CHANGE_WHO_MAY_CALL and not self.credentials_changed:
            self.credentials_changed = True
            await verified.changed(self.connection)

    # -- organisations ----------------------------------------------------------

    async def add_tenant(self, org_number: str, name: str, kind: str) -> Tenant:
        try:
            kind_value = self.domain.tenant_kind(kind)
            number = self.domain.tenant_number(org_number, kind_value)
        except ValueError as error:
            raise OperatorError(str(error)) from error
        if not name.strip():
            raise OperatorError("name must not be empty")
        if await self._find_tenant(number) is not None:
            raise OperatorError(f"organisation {number} already exists")
        tenant_id = await identities.insert_tenant(
            self.connection, number, name.strip(), kind_value, datetime.now(UTC)
        )
        tenant = Tenant(tenant_id, number, name.strip(), kind_value)
        await self._audit(tenant.id, "tenant.add", changes={"name": tenant.name, "kind": kind})
        return tenant

    async def _find_tenant(self, org_number: str) -> Tenant | None:
        row = await identities.tenant_by_number(self.connection, org_number)
        return Tenant(row.id, row.org_number, row.name, row.kind) if row else None

    async def tenant(self, org_number: str) -> Tenant:
        try:
            number = self.domain.tenant_number(org_number, None)
        except ValueError as error:
            raise OperatorError(str(error)) from error
        tenant = await self._find_tenant(number)
        if tenant is None:
            raise OperatorError(f"no organisation {number}; add it with scim tenant add")
        return tenant

    async def tenants(self) -> list[dict[str, Any]]:
        result = []
        for row in await identities.tenants_listed(self.connection):
            services = await self.agreements(row.id)
            result.append(
                {
                    "org_number": row.org_number,
                    "name": row.name,
                    "kind": row.kind,
                    "administrators": row.admins,
                    "agreements": services,
                }
            )
        return result

    async def agreements(self, tenant_id: int) -> list[str]:
        return await identities.agreements_of(self.connection, tenant_id)

    async def set_agreements(self, tenant: Tenant, services: list[str]) -> None:
        """The organisation's agreements made ``services``; its users whose permissions in an
        e-service start or stop with it are told to that e-service's receivers."""
        wanted = sorted({service.strip() for service in services if service.strip()})
        held = await identities.agreements_of(self.connection, tenant.id)
        await identities.replace_agreements(self.connection, tenant.id, wanted)
        await self._audit(tenant.id, "agreements.set", changes={"services": wanted})
        if set(held) != set(wanted):
            before = hooks.Tenant(tenant.id, tenant.kind, frozenset(held))
            after = hooks.Tenant(tenant.id, tenant.kind, frozenset(wanted))
            await tenant_changed(self.connection, self.domain, before, after)

    # -- administrators -----------------------------------------------------------

    async def add_administrator(
        self, tenant: Tenant, hsa_id: str, given_name: str, family_name: str, email: str
    ) -> str:
        try:
            hsa = self.domain.person_id(hsa_id)
        except ValueError as error:
            raise OperatorError(str(error)) from error
        for label, value in (
            ("first name", given_name),
            ("last name", family_name),
            ("e-mail", email),
        ):
            if not value.strip():
                raise OperatorError(f"{label} must not be empty")
        if "@" not in email:
            raise OperatorError(f"{email!r} is not an e-mail address")
        await identities.hold_users(self.connection)
        user_id = await identities.user_of(self.connection, tenant.id, hsa)
        if user_id is not None:
            # Administrator and user are exclusive roles within an organisation.
            raise OperatorError(
                f"{hsa} is a user of {tenant.name} (User {user_id}); an administrator cannot "
                "also be a user: delete the user first"
            )
        administrator_id = str(uuid.uuid4())
        if not await identities.insert_administrator(
            self.connection,
            id=administrator_id,
            tenant_id=tenant.id,
            hsa_id=hsa,
            given_name=given_name.strip(),
            family_name=family_name.strip(),
            email=email.strip(),
            created=datetime.now(UTC),
        ):
            raise OperatorError(f"{hsa} is already an administrator")
        await self._audit(
            tenant.id,
            "administrator.add",
            resource_type="Administrator",
            resource_id=hsa,
            changes={"givenName": given_name, "familyName": family_name, "email": email},
        )
        return administrator_id

    async def remove_administrator(self, tenant: Tenant, hsa_id: str) -> None:
        hsa = hsa_id.strip().upper()
        remaining = await identities.administrators_count(self.connection, tenant.id)
        if not await identities.delete_administrator(self.connection, tenant.id, hsa):
            raise OperatorError(f"{hsa} is not an administrator of {tenant.name}")
        if remaining <= 1:
            raise OperatorError(
                f"{hsa} is the last administrator of {tenant.name}; add another one first"
            )
        await self._audit(
            tenant.id, "administrator.remove", resource_type="Administrator", resource_id=hsa
        )

    async def administrators(self, tenant: Tenant) -> list[dict[str, Any]]:
        rows = await identities.administrators_of(self.connection, tenant.id)
        return [
            {
                "hsa_id": r.hsa_id,
                "given_name": r.given_name,
                "family_name": r.family_name,
                "email": r.email,
            }
            for r in rows
        ]

    # -- system clients and tokens ---------------------------------------------------

    async def register_client(
        self,
        tenant: Tenant,
        name: str,
        *,
        hsa_id: str | None = None,
        fingerprint: str | None = None,
    ) -> str:
        hsa = None
        if hsa_id:
            try:
                hsa = self.domain.person_id(hsa_id)
            except ValueError as error:
                raise OperatorError(str(error)) from error
        pinned = fingerprint.replace(":", "").lower() if fingerprint else None
        if pinned is not None and (
            len(pinned) != 64 or not all(c in "0123456789abcdef" for c in pinned)
        ):
            raise OperatorError("fingerprint must be the SHA-256 of the certificate, 64 hex digits")
        client_id = str(uuid.uuid4())
        if not await identities.insert_client(
            self.connection,
            id=client_id,
            tenant_id=tenant.id,
            name=name.strip() or DEFAULT_CLIENT,
            hsa_id=hsa,
            fingerprint=pinned,
            created=datetime.now(UTC),
        ):
            raise OperatorError("that HSA-id or fingerprint is already registered")
        await self._audit(
            tenant.id,
            "client.register",
            resource_type="SystemClient",
            resource_id=client_id,
            changes={"name": name, "hsaId": hsa, "fingerprint": pinned},
        )
        return client_id

    async def clients(self, tenant: Tenant) -> list[dict[str, Any]]:
        rows = await identities.clients_of(self.connection, tenant.id)
        return [
            {"id": r.id, "name": r.name, "hsa_id": r.hsa_id, "fingerprint": r.fingerprint}
            for r in rows
        ]

    async def issue_token(
        self, tenant: Tenant, *, client_id: str | None = None, days: int | None = None
    ) -> tuple[str, str]:
        """A new token for a client of the tenant (its first client, made if there is none).
        Returns (token id, token); the token itself is never stored."""
        if client_id is None:
            registered = await identities.clients_of(self.connection, tenant.id)
            if registered:
                client_id = str(registered[0].id)
            else:
                client_id = await self.register_client(tenant, DEFAULT_CLIENT)
        else:
            if await identities.client_owner(self.connection, client_id) != tenant.id:
                raise OperatorError(f"no system client {client_id} in {tenant.name}")
        if days is not None and days <= 0:
            raise OperatorError("a token must be valid for at least one day")
        now = datetime.now(UTC)
        token, token_id = new_token(), str(uuid.uuid4())
        await identities.insert_token(
            self.connection,
            id=token_id,
            client_id=client_id,
            token_hash=token_hash(token),
            created=now,
            expires=now + timedelta(days=days) if days else None,
        )
        await self._audit(
            tenant.id,
            "token.issue",
            resource_type="Token",
            resource_id=token_id,
            changes={"client": client_id, "days": days},
        )
        return token_id, token

    async def revoke_token(self, tenant: Tenant, token_id: str) -> None:
        if not await identities.revoke_token(
            self.connection, tenant.id, token_id, datetime.now(UTC)
        ):
            raise OperatorError(f"no active token {token_id} in {tenant.name}")
        await self._audit(tenant.id, "token.revoke", resource_type="Token", resource_id=token_id)

    async def tokens(self, tenant: Tenant) -> list[dict[str, Any]]:
        rows = await identities.tokens_of(self.connection, tenant.id)
        return [
            {
                "id": r.id,
                "client": r.name,
                "created": r.created,
                "expires": r.expires,
                "revoked": r.revoked,
            }
            for r in rows
        ]

    # -- receivers of security events ----------------------------------------------------

    async def add_receiver(
        self,
        audience: str,
        *,
        push_url: str | None,
        tenant: Tenant | None,
        aud: str | None = None,
    ) -> tuple[str, str | None]:
        """Register a receiver of ``audience``'s events, of every organisation or of
        ``tenant``: pushed to ``push_url``, else polled. Its id, and a poll receiver's token
        (shown once)."""
        try:
            audience = self.domain.audience(audience)
        except ValueError as error:
            raise OperatorError(str(error)) from error
        if push_url is not None and (problem := push_url_problem(push_url)) is not None:
            raise OperatorError(problem)
        receiver_id = str(uuid.uuid4())
        token = None if push_url is not None else new_token()
        await stored_events.add_receiver(
            self.connection,
            id=receiver_id,
            audience=audience,
            aud=aud or audience,
            tenant_id=tenant.id if tenant else None,
            push_url=push_url,
            token_hash=token_hash(token) if token else None,
            created=datetime.now(UTC),
        )
        await self._audit(
            tenant.id if tenant else None,
            "receiver.add",
            resource_type="Receiver",
            resource_id=receiver_id,
            changes={"audience": audience, "push_url": push_url, "poll": push_url is None},
        )
        return receiver_id, token

    async def remove_receiver(self, receiver_id: str) -> None:
        if not await stored_events.remove_receiver(self.connection, receiver_id):
            raise OperatorError(f"no receiver {receiver_id}")
        await self._audit(
            None, "receiver.remove", resource_type="Receiver", resource_id=receiver_id
        )

    async def replay(self, receiver_id: str) -> int:
        """The receiver's dead events delivered again, in order; how many."""
        count = await stored_events.replay(self.connection, receiver_id)
        if count is None:
            raise OperatorError(f"no receiver {receiver_id}")
        await self._audit(
            None,
            "receiver.replay",
            resource_type="Receiver",
            resource_id=receiver_id,
            changes={"events": count},
        )
        return count

    async def receivers(self) -> list[Any]:
        return await stored_events.receiver_states(self.connection)
