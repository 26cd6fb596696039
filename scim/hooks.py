"""The one interface between the SCIM engine and the domain installed on it.

The engine (``scim``) serves RFC 7643/7644 resources and knows nothing of what they are
for. A domain describes its schema extensions and, through the methods of ``Domain``, sees
every write before it is stored (with the stored version), contributes the filterable
attributes it computes as SQL, renders them on read, and adds to discovery and the routes.
The engine calls the domain; the domain never changes how the engine works. ``Domain``
itself is the neutral domain: core User and Group, nothing added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from scim2_models import Extension, Resource

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler
    from scim2_models.path import AttributeBinding
    from sqlalchemy.ext.asyncio import AsyncConnection

    from scim.settings import Settings
    from scim.storage.filters import Target
    from scim.storage.json_sql import JsonSql


@dataclass(frozen=True, slots=True)
class Tenant:
    """The organisation a request acts for, as the operator registered it and as
    authentication found it. ``kind`` and ``agreements`` (the services it has agreements
    for) are kept by the engine and read only by the domain."""

    id: int
    kind: str = ""
    agreements: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SchemaExtension:
    """A schema extension of one resource type (RFC 7643 §3.3)."""

    resource_type: str
    model: type[Extension]
    required: bool = False


@dataclass(frozen=True)
class Related:
    """What a resource reads of each resource related to it (a user's groups), besides id
    and display, for the attributes the domain computes from them: ``name`` → the path of
    the value in the related resource's stored document."""

    resource_type: str
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    # The attributes (name, schema or None for the core one) computed from them: the
    # relations are loaded whenever one of these is returned.
    computed: tuple[tuple[str, str | None], ...]

    @cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @cached_property
    def extensions_computed(self) -> tuple[str, ...]:
        """The extensions (URNs) the computed attributes are in: rendering gives each
        document its own copy of them, for the domain to add to."""
        return tuple(dict.fromkeys(schema for _, schema in self.computed if schema))


@dataclass(frozen=True)
class Demo:
    """Demo data as ``Domain.load_demo`` left it: whether it was made now, and a bearer token
    of the identity system of ``organisation``."""

    created: bool
    token: str
    organisation: str


@dataclass(frozen=True)
class Command:
    """An operator command of the domain, ``scim GROUP NAME ARGUMENT``: ``run`` gets the
    domain, a connection (one transaction) and the argument, and returns the lines to print."""

    group: str
    group_help: str
    name: str
    help: str
    argument: str
    run: Callable[[Domain, AsyncConnection, str], Awaitable[list[str]]]


class Domain:
    """What a domain adds to the engine. Each member's default adds nothing."""

    #: Operator commands the CLI offers besides its own.
    commands: ClassVar[Sequence[Command]] = ()
    #: The kinds of organisation the domain tells apart (none: any kind).
    tenant_kinds: ClassVar[Sequence[str]] = ()

    #: Schema extensions, by resource type.
    schema_extensions: Sequence[SchemaExtension] = ()
    #: Core models replaced by a subclass (say, to make an attribute read-only).
    models: Mapping[str, type[Resource[Any]]] = {}
    #: The User attribute (schema URN, name) holding the id a person's certificate carries
    #: in its subject serialNumber: unique within an organisation, and never the id of one
    #: of its administrators (a person is either).
    person_key: tuple[str, str] | None = None
    #: Per resource type, what its computed attributes read of related resources.
    related: Sequence[Related] = ()
    #: Attributes ``/Me`` returns besides the core ones (RFC 7644 §3.11).
    me_attributes: Sequence[str] = ()
    #: Security events (RFC 9967, ``scim.events``): the User attributes (schema URN or None,
    #: name) that ``audiences`` reads of the user itself, besides its relations.
    audience_inputs: Sequence[tuple[str | None, str]] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Domain:
        """The domain as the server's settings configure it."""
        return cls()

    async def load_demo(self, settings: Settings, report: Callable[[str], None]) -> Demo | None:
        """Make demo data unless present (``scim serve --demo``); None: the domain has none."""
        return None

    def prepare(
        self,
        resource_type: str,
        document: dict[str, Any],
        previous: dict[str, Any] | None,
        tenant: Tenant,
    ) -> None:
        """Check a document about to be stored, and complete it in place; ``previous`` is
        the stored version (None on creation). A SCIMException refuses the write."""

    def attribute(
        self,
        resource_type: str,
        path: tuple[str, ...],
        binding: AttributeBinding,
        json: JsonSql,
        tenant: Tenant,
    ) -> Target | None:
        """The SQL of an attribute the domain computes (None: stored, the engine's own)."""
        return None

    def render(
        self,
        resource_type: str,
        document: dict[str, Any],
        related: Sequence[tuple[str, dict[str, Any]]],
        tenant: Tenant,
    ) -> None:
        """Add computed attributes to a document being returned, from the related resources
        (id, the ``Related`` fields read of it)."""

    def audiences(
        self,
        document: dict[str, Any],
        related: Sequence[tuple[str, dict[str, Any]]],
        tenant: Tenant,
    ) -> Mapping[str, frozenset[str]]:
        """What a user (its stored ``document`` and related resources, as ``render`` gets
        them) may do in each audience that receives security events: a change of it is told
        to that audience's receivers (``scim.events``). Default: no audience."""
        return {}

    def audience_state(self) -> str:
        """What decides ``audiences`` besides a user's data and its organisation (say, a
        catalogue), as text: when it differs from what the engine stored, the users it
        ``concerns`` are told (``scim.events.changes.state_changed``)."""
        return ""

    async def concerns(
        self, connection: AsyncConnection, previous: str
    ) -> tuple[Domain, Mapping[int, set[str]]]:
        """For an ``audience_state`` that was ``previous``: the domain as it was then, and the
        users (ids, by organisation id) whose audiences may differ between the two."""
        return self, {}

    def audience(self, value: str) -> str:
        """An audience a receiver may hear, as stored; ValueError if the domain has none such."""
        if not value.strip():
            raise ValueError("the audience must not be empty")
        return value.strip()

    def describe(self, schema: dict[str, Any]) -> None:
        """Complete a schema's representation for ``/Schemas`` in place."""

    def routes(self) -> Sequence[ControllerRouterHandler]:
        """Routes of the domain, served to authenticated callers outside the SCIM path."""
        return ()

    def tenant_number(self, number: str, kind: str | None) -> str:
        """An organisation's registration number as stored; ValueError if it is none."""
        if not number.strip():
            raise ValueError("the number must not be empty")
        return number.strip()

    def tenant_kind(self, kind: str) -> str:
        """An organisation's kind as stored; ValueError if the domain knows no such kind."""
        if self.tenant_kinds and kind not in self.tenant_kinds:
            raise ValueError(f"kind must be {' or '.join(self.tenant_kinds)}, not {kind!r}")
        return kind.strip()

    def person_id(self, value: str) -> str:
        """A person's id as certificates carry it (serialNumber), as stored; ValueError."""
        if not value.strip():
            raise ValueError("the id must not be empty")
        return value.strip().upper()
