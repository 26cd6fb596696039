"""Which security events a change makes, decided in the change's own transaction.

A receiver listens to one audience (an e-service). A user's change is told to an audience
when what the user may do there changes (``Domain.audiences``): directly, through a group's
permissions or its membership, or by the organisation's agreements. Events are RFC 9967
§2.4 provisioning events in notice form: they name the changed attributes, never values;
a receiver reads what it needs.

``Outbox`` collects the events of one transaction and writes them with it
(``scim.storage.events``): a change that commits always has its events, one rolled back
never has.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from scim.hooks import Domain, Related, Tenant
from scim.storage import events as stored_events
from scim.storage.repository import Repository

# RFC 9967 §2.4: the provisioning events, by the name this server stores.
CREATE, PATCH, PUT, DELETE = "create", "patch", "put", "delete"
ACTIVATE, DEACTIVATE = "activate", "deactivate"

Relations = Sequence[tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class View:
    """A user as security events see it: what it may do in each audience, whether it is
    active, its person key, and its stored document (for the names of changed attributes)."""

    audiences: Mapping[str, frozenset[str]]
    active: bool
    person: str | None
    document: Mapping[str, Any]
    related: Relations = ()


def changed_attributes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The names of the attributes that differ, as RFC 7644 §3.10 writes them: core ones by
    name, an extension's fully qualified (``urn:...:User:hsaId``)."""
    names = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key.startswith("urn:") and isinstance(old or {}, dict) and isinstance(new or {}, dict):
            old, new = old or {}, new or {}
            names += [
                f"{key}:{name}"
                for name in sorted(set(old) | set(new))
                if old.get(name) != new.get(name)
            ]
        else:
            names.append(key)
    return names


@dataclass
class Outbox:
    """The events of one transaction, for one organisation."""

    domain: Domain
    tenant: Tenant
    related: Related | None
    person_key: tuple[str, str] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    # Events written by ``flush``: once committed, delivery is woken for them.
    written: int = 0
    # The audiences some receiver hears in the organisation, read once (``hears``).
    heard: frozenset[str] | None = None

    @classmethod
    def of(cls, domain: Domain, tenant: Tenant) -> Outbox:
        related = next((r for r in domain.related if r.resource_type == "User"), None)
        return cls(domain, tenant, related, domain.person_key)

    @cached_property
    def txn(self) -> str:
        """The transaction's id in its events (RFC 8417 ``txn``): drawn only for a change
        that makes some, not for every write that asks whether it does."""
        return str(uuid.uuid4())

    @property
    def listening(self) -> bool:
        """Whether the domain has audiences at all (the neutral domain has none)."""
        return type(self.domain).audiences is not Domain.audiences

    async def hears(self, connection: AsyncConnection) -> bool:
        """Whether any receiver hears the organisation's events: if none does, a change reads
        no user's view before and after it, and makes no event. Read once, in the change's
        transaction; a receiver registered while it runs hears from the next change on."""
        if not self.listening:
            return False
        if self.heard is None:
            self.heard = await stored_events.heard_in(connection, self.tenant.id)
        return bool(self.heard)

    def inputs_differ(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
        """Whether a user's write changes anything an audience or an event depends on: the
        domain's inputs, ``active``, the person key."""
        paths: list[tuple[str | None, str]] = [*self.domain.audience_inputs, (None, "active")]
        if self.person_key is not None:
            paths.append(self.person_key)
        return any(_at(before, path) != _at(after, path) for path in paths)

    def view(
        self, document: Mapping[str, Any], related: Relations, tenant: Tenant | None = None
    ) -> View:
        audiences = self.domain.audiences(dict(document), related, tenant or self.tenant)
        person = _at(document, self.person_key) if self.person_key is not None else None
        return View(
            {audience: granted for audience, granted in audiences.items() if granted},
            document.get("active") is not False,
            person if isinstance(person, str) else None,
            document,
            related,
        )

    async def views(self, repository: Repository, user_ids: Iterable[str]) -> dict[str, View]:
        """The views of these users as stored now (those that exist)."""
        fields = self.related.fields if self.related is not None else ()
        found = await repository.users_related(user_ids, fields)
        return {user_id: self.view(data, related) for user_id, (data, related) in found.items()}

    def compare_all(
        self, before: Mapping[str, View], after: Mapping[str, View], attributes: Iterable[str]
    ) -> None:
        """``compare`` for each user in either."""
        names = list(attributes)
        for user_id in sorted(set(before) | set(after)):
            self.compare(user_id, before.get(user_id), after.get(user_id), PATCH, names)

    async def flush(self, connection: AsyncConnection) -> None:
        """Write the events collected so far, in the transaction of ``connection``."""
        events, self.events = self.events, []
        self.written += await stored_events.write(connection, self.txn, events, self.heard)

    def group_grants(self, document: Mapping[str, Any] | None) -> bool:
        """Whether membership of a group (its stored ``document``) gives anything in any
        audience: if not, joining or leaving it changes nothing to tell."""
        if document is None or self.related is None:
            return False
        return bool(self.domain.audiences({}, [("", self.relation_fields(document))], self.tenant))

    def relation_fields(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """What a user's relation to a group reads of the group (``Related.fields``)."""
        if self.related is None:
            return {}
        return {name: _deep(document, path) for name, path in self.related.fields}

    def compare(
        self,
        resource_id: str,
        before: View | None,
        after: View | None,
        operation: str = PATCH,
        attributes: Iterable[str] = (),
    ) -> None:
        """The events of a user's change from ``before`` to ``after`` (None: it did not
        exist, or no longer does), for every audience it matters to."""
        now = datetime.now(UTC)
        if before is None and after is None:
            return
        extra = list(attributes)

        def add(audience: str, event: str, names: Sequence[str], person: str | None) -> None:
            self.events.append(
                {
                    "txn": self.txn,
                    "at": now,
                    "tenant_id": self.tenant.id,
                    "audience": audience,
                    "event": event,
                    "resource_type": "User",
                    "resource_id": resource_id,
                    "person": person,
                    "attributes": list(names),
                }
            )

        if before is None:
            assert after is not None
            for audience in sorted(after.audiences):
                add(audience, CREATE, sorted(set(after.document) - {"schemas"}), after.person)
            return
        if after is None:
            for audience in sorted(before.audiences):
                add(audience, DELETE, [], before.person)
            return
        names = changed_attributes(before.document, after.document)
        for audience in sorted(set(before.audiences) | set(after.audiences)):
            was, now_held = before.audiences.get(audience), after.audiences.get(audience)
            if before.active != after.active:
                if after.active and now_held:
                    add(audience, ACTIVATE, ["active"], after.person)
                elif not after.active and was:
                    add(audience, DEACTIVATE, ["active"], after.person)
            told = [n for n in names if n != "active"]
            if was != now_held:
                told = sorted({*told, *extra, *self.computed_names()})
            elif before.person == after.person:
                continue
            if told:
                add(audience, operation, told, after.person)

    def computed_names(self) -> list[str]:
        """The attributes the domain computes from what a user may do."""
        if self.related is None:
            return []
        return [f"{schema}:{name}" if schema else name for name, schema in self.related.computed]


def _at(document: Mapping[str, Any], path: tuple[str | None, str]) -> Any:
    schema, name = path
    holder = document.get(schema) or {} if schema else document
    return holder.get(name) if isinstance(holder, Mapping) else None


def _deep(document: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = document
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


# Users read at a time when every user of an organisation may be concerned.
_USERS_PER_READ = 1000


async def tenant_changed(
    connection: AsyncConnection, domain: Domain, before: Tenant, after: Tenant
) -> None:
    """The events of an organisation's change (its agreements): for each of its users, what
    it may do under ``before`` against what it may do under ``after``."""
    outbox = Outbox.of(domain, after)
    if not outbox.listening:
        return
    repository = Repository(connection, after.id)
    last = ""
    while ids := await repository.users(last, _USERS_PER_READ):
        last = ids[-1]
        for user_id, now in (await outbox.views(repository, ids)).items():
            was = outbox.view(now.document, now.related, before)
            outbox.compare(user_id, was, now, PATCH, outbox.computed_names())
        await outbox.flush(connection)


_STATE = "audience_state"


async def state_changed(connection: AsyncConnection, domain: Domain) -> int:
    """Tell the users a change of the domain's ``audience_state`` concerns (a permission
    retired in the catalogue), once: the first worker to start after the change does, under
    the lock of the stored state's row. How many events it wrote."""
    current = domain.audience_state()
    if not current or not Outbox.of(domain, Tenant(0)).listening:
        return 0
    previous = await stored_events.locked_state(connection, _STATE)
    if previous == current:
        return 0
    written = 0
    if previous is not None:
        earlier, concerned = await domain.concerns(connection, previous)
        for tenant_id, user_ids in sorted(concerned.items()):
            tenant = await stored_events.tenant(connection, tenant_id)
            if tenant is None:
                continue
            outbox = Outbox.of(domain, tenant)
            was = Outbox.of(earlier, tenant)
            repository = Repository(connection, tenant_id)
            ordered = sorted(user_ids)
            for start in range(0, len(ordered), _USERS_PER_READ):
                views = await outbox.views(repository, ordered[start : start + _USERS_PER_READ])
                for user_id, now in views.items():
                    before = was.view(now.document, now.related)
                    outbox.compare(user_id, before, now, PATCH, outbox.computed_names())
                await outbox.flush(connection)
            written += outbox.written
    await stored_events.store_state(connection, _STATE, current, previous is None)
    return written
