"""The SCIM operations on resources, independent of HTTP: one method, one transaction.

Writes validate with scim2-models; reads return stored documents as they are,
projected as dicts, never round-tripped through pydantic.
"""

from __future__ import annotations

import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Container,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial, wraps
from typing import Any, NamedTuple, ParamSpec

import msgspec
from pydantic import ValidationError
from scim2_models import (
    ConflictException,
    Context,
    InvalidFilterException,
    InvalidValueException,
    NotFoundException,
    PatchOp,
    PayloadTooLargeException,
    PreconditionFailedException,
    Resource,
    SCIMException,
    SearchRequest,
    UniquenessException,
)
from scim2_models.path import FilterNode
from sqlalchemy import ColumnElement, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.errors import from_validation
from scim.events.changes import PATCH, PUT, Outbox, View
from scim.hooks import Tenant
from scim.protocol import membership, paging
from scim.protocol.assignments import Assignments, Writes, as_sent
from scim.protocol.creations import Creations
from scim.protocol.folding import fold, sort_key
from scim.protocol.membership import Member
from scim.protocol.patches import Patches
from scim.protocol.projection import Plan, Projector
from scim.protocol.searches import Search, Searches
from scim.recent import Recent
from scim.registry import Registry, ResourceKind
from scim.settings import Settings
from scim.storage import audit, database, direct, filters, kept, keyset
from scim.storage.json_sql import JsonSql
from scim.storage.repository import (
    PROBED_KEYS,
    BatchConflict,
    Fields,
    MemberGone,
    Repository,
    UniquenessConflict,
)
from scim.storage.tables import KEY_LIMITS, MEMBER_DISPLAY_LIMIT

_WRITE_ATTEMPTS = 3
_ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
# PATCH operations (not on members) above which they are applied before the transaction.
_APPLIED_AHEAD = 8
P = ParamSpec("P")


# RFC 8259 §6: the largest integer every JSON implementation holds exactly. A startIndex
# beyond it names no page, and would overflow the databases' 64-bit OFFSET.
MAX_START_INDEX = 2**53


def etag(version: int) -> str:
    return f'W/"{version}"'


# A row read without its members (Group) or groups (User).
_NOT_READ: Any = object()


def _timestamp(value: datetime) -> str:
    """RFC 7643 §2.3.5: an xsd:dateTime, in UTC written "Z" (msgspec writes it in a seventh
    of the time ``isoformat`` takes; a page of 100 users has 200 of them)."""
    if value.tzinfo is None:  # SQLite's are naive UTC (a replaced tzinfo costs eight times more)
        return _encode(value)[1:-1].decode() + "Z"
    if value.tzinfo is not UTC:  # PostgreSQL's are in UTC already
        value = value.astimezone(UTC)
    return _encode(value)[1:-1].decode()


_encode = msgspec.json.Encoder().encode


def _fold(value: Any) -> str | None:
    return fold(value) if isinstance(value, str) else None


def _sort_key(value: Any) -> str | None:
    return sort_key(value) if isinstance(value, str) else None


def search_keys(document: dict[str, Any], person: str | None = None) -> dict[str, Any]:
    """The indexed columns derived from a stored document (see ``scim.storage.tables``), with
    the person key it holds (``ResourceKind.person``)."""
    name = document.get("name") or {}
    active = document.get("active")
    return {
        "external_id": document.get("externalId"),
        "user_name_key": _fold(document.get("userName")),
        "display_name_key": _fold(document.get("displayName")),
        "family_name_key": _fold(name.get("familyName")),
        "given_name_key": _fold(name.get("givenName")),
        "active": active if isinstance(active, bool) else None,
        "display": document.get("displayName") or document.get("userName"),
        "hsa_id_key": _fold(person),
        "display_name_sort": _sort_key(document.get("displayName")),
        "family_name_sort": _sort_key(name.get("familyName")),
        "given_name_sort": _sort_key(name.get("givenName")),
    }


@dataclass(frozen=True)
class Caller:
    """Whom a request acts for, in which organisation, and the base URL its locations are
    built on."""

    tenant: Tenant
    base_url: str
    actor: str = "system"

    @property
    def tenant_id(self) -> int:
        return self.tenant.id


@dataclass
class Draft:
    """A resource to create, validated and prepared in Python before any database work, so
    that many can be checked and written in one transaction (Bulk, see ``CreateBatch``).

    Errors are kept, not raised, for where ``create`` would meet them: ``invalid`` before
    the members are looked up, ``refused`` after.
    """

    kind: ResourceKind
    resource_id: str
    body: dict[str, Any]
    document: dict[str, Any] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    keys: dict[str, Any] = field(default_factory=dict)
    invalid: SCIMException | None = None
    refused: SCIMException | None = None

    def row(self, now: datetime) -> dict[str, Any]:
        """The draft as a new row of ``resources`` (its tenant apart), written at ``now``."""
        return {
            "id": self.resource_id,
            "resource_type": self.kind.name,
            "created": now,
            "last_modified": now,
            "version": 1,
            "data": self.document,
            **self.keys,
        }


@dataclass(frozen=True)
class _Compiled:
    """A search's shape compiled, its values ``kept.Deferred``: its condition, sort key and
    order, and the shapes of its page's and its count's statements."""

    matching: ColumnElement[bool] | None
    key: ColumnElement[Any] | None
    order: Sequence[ColumnElement[Any]]
    page: kept.Shape
    count: kept.Shape


@dataclass
class Written:
    """A resource as a write left it: its document (None when not asked for) and version."""

    document: dict[str, Any] | None
    version: int
    location: str


class Stored(NamedTuple):
    """A resource as a write stored it, rendered as a row read back would be (``render``)
    without reading it back."""

    id: str
    data: dict[str, Any]
    created: datetime
    last_modified: datetime
    version: int
    relations: Any


def if_match_allows(header: str | None, version: int) -> bool:
    """RFC 7232 §3.1 with weak comparison, as RFC 7644 §3.14 uses it."""
    if header is None or header.strip() == "*":
        return True
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return f'"{version}"' in wanted


def _again_if_a_member_went(
    write: Callable[P, Awaitable[Written]],
) -> Callable[P, Awaitable[Written]]:
    """A write in a transaction of its own, again if a member it adds was deleted by a
    concurrent request after the check (its foreign key failed): the next check finds the
    member gone and refuses it (400), as if the write had come after the delete."""

    @wraps(write)
    async def again(*arguments: P.args, **options: P.kwargs) -> Written:
        for _ in range(_WRITE_ATTEMPTS):
            try:
                return await write(*arguments, **options)
            except MemberGone:
                continue
        raise ConflictException(
            detail="Concurrent changes kept this write from happening; try again"
        )

    return again


@dataclass
class _Operations:
    """A PATCH's operations but those of members: the ``writes`` they make where they are
    all assignments as sent (``ResourceService._operations``), else None and the PatchOp
    scim2-models validated. ``patch`` validates one when it is needed after all (a value
    the writes cannot store as it is, for scim2-models to apply or refuse)."""

    writes: Writes | None
    validate: Callable[[], PatchOp[Any]]
    validated: PatchOp[Any] | None = None

    def patch(self) -> PatchOp[Any]:
        if self.validated is None:
            self.validated = self.validate()
        return self.validated


class ResourceService:
    def __init__(self, registry: Registry, engine: AsyncEngine, settings: Settings) -> None:
        self.registry = registry
        self.domain = registry.domain
        self.engine = engine
        # Reads need no transaction; skipping BEGIN/COMMIT saves two round trips.
        self.read_engine = database.reads(engine)
        # Called once a transaction that wrote security events has committed
        # (``scim.events.delivery`` wakes up).
        self.events_committed: Callable[[], None] = lambda: None
        self.settings = settings = settings.with_cursor_secret()
        self._cursor_secret = str(settings.cursor_secret).encode()
        self.searches = Searches()
        self.patches = Patches()
        self.creations = Creations(registry.provider.policy)
        self.assignments = Assignments(registry.kinds)
        # Search shapes compiled (``_compiled``), per worker.
        self._shapes = Recent(1024)
        self.projectors = {
            kind.name: Projector(
                next(s for s in registry.provider.schemas if str(s.id) == kind.schema),
                [s for s in registry.provider.schemas if str(s.id) in kind.extensions],
            )
            for kind in registry.kinds.values()
        }

    # -- rendering ------------------------------------------------------------

    def plan(
        self, kind: ResourceKind, attributes: Sequence[str] | None, excluded: Sequence[str] | None
    ) -> Plan:
        return self.projectors[kind.name].plan(attributes, excluded)

    def location(self, caller: Caller, kind: ResourceKind, resource_id: str) -> str:
        return f"{caller.base_url}/{kind.endpoint}/{resource_id}"

    def render(
        self, caller: Caller, kind: ResourceKind, row: Row[Any] | Stored, plan: Plan
    ) -> dict[str, Any]:
        document = dict(row.data)
        related = kind.related
        if related is not None:
            # Its own copy of each extension the domain computes attributes in: the row's
            # document stays as stored, for whatever compares with it.
            for schema in related.extensions_computed:
                if isinstance(extension := document.get(schema), dict):
                    document[schema] = dict(extension)
        document["id"] = row.id
        document["meta"] = {
            "resourceType": kind.name,
            "created": _timestamp(row.created),
            "lastModified": _timestamp(row.last_modified),
            "location": self.location(caller, kind, row.id),
            "version": etag(row.version),
        }
        manager = document.get(_ENTERPRISE, {}).get("manager") if kind.name == "User" else None
        if isinstance(manager, dict) and isinstance(manager.get("value"), str):
            # RFC 7643 §4.3: the manager's URI, as this request reaches it.
            users = self.registry.by_name["User"]
            reference = self.location(caller, users, manager["value"])
            document[_ENTERPRISE] = {
                **document[_ENTERPRISE],
                "manager": {**manager, "$ref": reference},
            }
        relations = getattr(row, "relations", _NOT_READ)
        if isinstance(relations, (str, bytes)):
            relations = msgspec.json.decode(relations)
        if related is not None and relations is not _NOT_READ:
            # What the domain reads of each related resource is not part of what it shows.
            fields = related.field_names
            read = [
                (entry["value"], {name: entry.pop(name, None) for name in fields})
                for entry in relations or []
            ]
            self.domain.render(kind.name, document, read, caller.tenant)
        if relations and relations is not _NOT_READ:
            document["members" if kind.name == "Group" else "groups"] = relations
        return plan.apply(document)

    @staticmethod
    def _relations(kind: ResourceKind, plan: Plan) -> Fields | None:
        """Whether members (Group) or groups (User) are to be loaded at all (None: not),
        and what of each: they are when returned, or when an attribute the domain
        computes from them is."""
        related = kind.related
        computed = related.computed if related is not None else ()
        if plan.returns("members" if kind.name == "Group" else "groups") or any(
            plan.returns(name, schema) for name, schema in computed
        ):
            return related.fields if related is not None else ()
        return None

    # -- reads ----------------------------------------------------------------

    async def get(
        self, caller: Caller, kind: ResourceKind, resource_id: str, plan: Plan
    ) -> tuple[dict[str, Any], int]:
        # Only reads: the pool lends a connection to each (``scim.storage.direct``).
        repository = _repository(self.read_engine, caller)
        row = await repository.get(kind.name, resource_id, relations=self._relations(kind, plan))
        if row is None:
            raise NotFoundException(detail=f"{kind.name} {resource_id} not found")
        return self.render(caller, kind, row, plan), row.version

    def parse_search(self, kinds: Sequence[ResourceKind], payload: dict[str, Any]) -> Search:
        """A query's parameters or SearchRequest body, within the limits that keep its cost
        bounded (an overlong filter is refused before it is parsed)."""
        filter_ = payload.get("filter")
        if isinstance(filter_, str) and len(filter_) > filters.MAX_FILTER_LENGTH:
            raise InvalidFilterException(
                detail=f"The filter is longer than {filters.MAX_FILTER_LENGTH} characters"
            )
        models = tuple(kind.model for kind in kinds)
        model: Any = models[0]
        for other in models[1:]:
            model = model | other
        try:
            search = self.searches.validate(model, payload)
        except ValidationError as error:
            raise from_validation(error) from error
        start_index = search.request.start_index
        if start_index is not None and start_index > MAX_START_INDEX:
            raise InvalidValueException(detail=f"startIndex must be at most {MAX_START_INDEX}")
        return search

    async def search(
        self, caller: Caller, kinds: Sequence[ResourceKind], search: Search
    ) -> dict[str, Any]:
        """A ListResponse for a query over one resource type or, at the root, several."""
        request = search.request
        json = JsonSql(self.engine.dialect.name)
        computed = partial(self.domain.attribute, tenant=caller.tenant)
        descending = request.sort_order == SearchRequest.SortOrder.descending
        compiled = self._compiled(caller, kinds, search, json) if not request.cursor else None
        page_shape = count_shape = None
        matching: ColumnElement[bool] | None
        if compiled is not None:
            matching, key, order = compiled.matching, compiled.key, compiled.order
            page_shape = compiled.page.given(search.literals)
            count_shape = compiled.count.given(search.literals)
        else:
            matching = filters.search_filter(kinds, json, request.filter, computed)
            key = filters.sort_key(kinds, json, request.sort_by, computed)
            order = keyset.order(key, descending)
        count = self.settings.default_page_size if request.count is None else request.count
        count = max(0, min(count, self.settings.max_page_size))
        start_index = request.start_index or 1
        # A cursor is only good for the order it was issued in: sortBy and sortOrder.
        sort_name = str(request.sort_by or "") + (" descending" if descending else "")
        cursor = None
        where = matching
        kind_names = [kind.name for kind in kinds]
        # A cursor is good only in the organisation and for the resource types it came from.
        cursor_scope = f"{caller.tenant_id}:{','.join(kind_names)}"
        if request.cursor:
            cursor = paging.Cursor.decode(
                request.cursor, sort_name, self._cursor_secret, cursor_scope
            )
            where = keyset.after(cursor, key, descending, matching)
        attributes = [str(a) for a in request.attributes or []] or None
        excluded = [str(a) for a in request.excluded_attributes or []] or None
        plans = {kind.name: self.plan(kind, attributes, excluded) for kind in kinds}
        relations = [
            (kind.name, fields)
            for kind in kinds
            if (fields := self._relations(kind, plans[kind.name])) is not None
        ]
        paged_by_cursor = request.cursor is not None
        repository = _repository(self.read_engine, caller)
        rows, total = await repository.search(
            kind_names,
            where,
            order,
            offset=0 if paged_by_cursor else start_index - 1,
            # One row more than asked tells whether a next cursor is due.
            limit=count + 1 if paged_by_cursor and count else count,
            relations=relations,
            sort_key=key,
            count_total=not paged_by_cursor,
            shapes=(page_shape, count_shape),
        )
        if total is None:
            # RFC 9865 §2.2: totalResults counts the whole result, not what is left.
            total = await repository.count(kind_names, matching, count_shape)
        next_cursor = None
        if paged_by_cursor and count and len(rows) > count:
            rows = rows[:count]
            last = rows[-1]
            next_cursor = paging.Cursor(sort_name, getattr(last, "sort_key", None), last.id).encode(
                self._cursor_secret, cursor_scope
            )
        by_name = {kind.name: kind for kind in kinds}
        resources_out = [
            self.render(caller, by_name[row.resource_type], row, plans[row.resource_type])
            for row in rows
        ]
        response: dict[str, Any] = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "itemsPerPage": len(resources_out),
        }
        if not paged_by_cursor:
            response["startIndex"] = start_index
        if next_cursor is not None:
            response["nextCursor"] = next_cursor
        response["Resources"] = resources_out
        return response

    def _compiled(
        self, caller: Caller, kinds: Sequence[ResourceKind], search: Search, json: JsonSql
    ) -> _Compiled | None:
        """The search's shape compiled once (``scim.protocol.searches``): None for a search
        of no shape seen before, or one whose SQL depends on its values."""
        if search.shape is None:
            return None
        template, request = search.template, search.request
        return self._shapes.get(
            (search.shape, tuple(kind.name for kind in kinds)),
            lambda: self._compile(caller, kinds, template, request, json),
        )

    def _compile(
        self,
        caller: Caller,
        kinds: Sequence[ResourceKind],
        template: FilterNode | None,
        request: SearchRequest[Any],
        json: JsonSql,
    ) -> _Compiled | None:
        """A shape's filter (its string literals ``Literal``; None: no filter), sort and order,
        compiled for every request of the shape; None where the SQL depends on the values,
        or on the organisation."""

        def computed(
            resource_type: str, path: tuple[str, ...], binding: Any, json: JsonSql
        ) -> None:
            # What the domain computes depends on the organisation and may change with it
            # (its agreements).
            target = self.domain.attribute(resource_type, path, binding, json, caller.tenant)
            if target is not None:
                raise filters.Unshapable

        try:
            matching = filters.search_filter(kinds, json, template, computed)
            key = filters.sort_key(kinds, json, request.sort_by, computed)
        except (filters.Unshapable, SCIMException):
            return None
        order = keyset.order(key, request.sort_order == SearchRequest.SortOrder.descending)
        page, count = kept.shape(matching, key, *order), kept.shape(matching)
        if page is None or count is None:
            return None
        return _Compiled(matching, key, order, page, count)

    # -- writes ---------------------------------------------------------------

    def _validate(
        self, kind: ResourceKind, body: dict[str, Any], context: Context
    ) -> Resource[Any]:
        body = _without_empty_schemas(kind, body)
        try:
            with self.registry.provider:
                model = kind.model.model_validate(body, scim_ctx=context)
        except ValidationError as error:
            raise from_validation(error) from error
        except SCIMException:
            raise
        except ValueError as error:
            raise InvalidValueException(detail=str(error)) from error
        _require_text(kind, model)
        return model

    def _storable(
        self,
        kind: ResourceKind,
        model: Resource[Any],
        context: Context = Context.RESOURCE_REPLACEMENT_REQUEST,
    ) -> dict[str, Any]:
        """The document to store: the model as a request carries it, without what the server
        keeps elsewhere (id, meta, members, groups), makes on reading (the manager's $ref)
        or not at all (password)."""
        with self.registry.provider:
            document = model.model_dump(scim_ctx=context)
        # Passwords are write-only and this server authenticates no one by them.
        document.pop("password", None)
        document.pop("members", None)
        document.pop("groups", None)
        for key in ("id", "meta"):
            document.pop(key, None)
        manager = document.get(_ENTERPRISE, {}).get("manager")
        if isinstance(manager, dict):
            # Its URI is this server's to give, on every read (``render``).
            manager.pop("$ref", None)
        return document

    def _stored_model(self, kind: ResourceKind, row: Row[Any]) -> Resource[Any]:
        with self.registry.provider:
            return kind.model.model_validate(dict(row.data), scim_ctx=None)

    async def _check_members(
        self, repository: Repository, group_id: str, new_members: list[Member]
    ) -> list[Member]:
        """The members, once each is known to be a resource of the organisation; a display
        that is the member's own is not kept as the client's (a group read and sent back
        is the group as it was)."""
        _check_member_displays(new_members)
        found = await repository.existing(member_id for member_id, _ in new_members)
        _check_member_ids(group_id, new_members, found)
        return [
            (member_id, None if display == found[member_id].display else display)
            for member_id, display in new_members
        ]

    async def create(
        self, caller: Caller, kind: ResourceKind, body: dict[str, Any], plan: Plan | None
    ) -> Written:
        """Create a resource: a batch of one (``CreateBatch``), through the checks and writes
        of Bulk's batches. With no ``plan`` no representation is read back."""
        draft = self.draft(kind, body, caller.tenant)
        if draft.invalid is not None:
            raise draft.invalid
        location = self.location(caller, kind, draft.resource_id)
        if self._alone(kind) and draft.refused is None and not draft.members:
            created = await self._created_alone(caller, kind, draft, plan)
            if created is not None:
                return created
        conflict: BatchConflict | None = None
        for _ in range(_WRITE_ATTEMPTS):
            try:
                outbox = self.outbox(caller)
                async with self.engine.begin() as connection:
                    repository = _repository(connection, caller)
                    batch = CreateBatch(repository, caller, outbox, probe_keys=False)
                    await batch.look_up([draft])
                    if (refused := batch.admit(draft)) is not None:
                        raise refused
                    await batch.write()
                    row: Row[Any] | Stored | None = None
                    if plan is not None and kind.name == "Group":
                        row = await self._reload(repository, kind, draft.resource_id, plan)
                    elif plan is not None:
                        row = self._created(draft, batch.written_at, plan)
                self.committed(outbox)
                if row is None or plan is None:
                    return Written(None, 1, location)
                return Written(self.render(caller, kind, row, plan), row.version, location)
            except BatchConflict as error:
                if isinstance(error, UniquenessConflict) and error.key not in (None, *PROBED_KEYS):
                    # A key no look-up probes (a group's displayName): the database's word
                    # is the answer.
                    raise _taken(kind, draft.document, error) from None
                # A unique key taken, or a member deleted (concurrently): the lookups of a
                # batch say which, as for any draft of a batch; if none is, try again.
                conflict = error
                async with self.read_engine.connect() as connection:
                    batch = CreateBatch(_repository(connection, caller), caller, outbox)
                    await batch.look_up([draft])
                    if (refused := batch.admit(draft)) is not None:
                        raise refused from None
        if isinstance(conflict, UniquenessConflict):
            raise _taken(kind, draft.document, conflict)  # the database's word, then
        raise ConflictException(
            detail="Concurrent changes kept this resource from being created; try again"
        )

    def _alone(self, kind: ResourceKind) -> bool:
        """Whether a write of ``kind`` may be made in one statement with no transaction
        around it (``_created_alone``, ``_written_alone``): on PostgreSQL, whose statements
        can write several tables at once, and not of groups (their members are checked
        and written apart)."""
        return kind.name != "Group" and self.read_engine.dialect.name == "postgresql"

    async def _created_alone(
        self, caller: Caller, kind: ResourceKind, draft: Draft, plan: Plan | None
    ) -> Written | None:
        """A create in one statement with no transaction around it: the resource and its
        audit record (``Repository.insert_recorded``), one round trip instead of five
        (BEGIN, INSERT, the check for an administrator, INSERT, COMMIT) or six (the
        receivers of its events).

        None, and nothing written, where the create is the transaction's to make, which
        says why it refuses or writes what else it must: a unique key taken, an
        administrator with the person key, or a receiver of the events it makes."""
        outbox = self.outbox(caller)
        if outbox.listening and kind.name == "User":
            outbox.compare(draft.resource_id, None, outbox.view(draft.document, ()))
        now = datetime.now(UTC)
        record = _audited(caller, kind, "create", draft.resource_id, draft.body, now)
        audiences = sorted({event["audience"] for event in outbox.events})
        repository = _repository(self.read_engine, caller)
        person = kind.person(draft.document)
        try:
            if not await repository.insert_recorded(draft.row(now), record, person, audiences):
                return None
        except BatchConflict:
            return None
        location = self.location(caller, kind, draft.resource_id)
        if plan is None:
            return Written(None, 1, location)
        return Written(
            self.render(caller, kind, self._created(draft, now, plan), plan), 1, location
        )

    def _created(self, draft: Draft, at: datetime, plan: Plan) -> Stored:
        """A new resource other than a group as stored at ``at``, without reading it back:
        a new user is in no group."""
        related = [] if self._relations(draft.kind, plan) is not None else _NOT_READ
        return Stored(draft.resource_id, draft.document, at, at, 1, related)

    def new_document(self, kind: ResourceKind, body: dict[str, Any]) -> dict[str, Any]:
        """The document to store of a creation body, validated whole: what ``Creations``
        learns a shape's from."""
        model = self._validate(kind, body, Context.RESOURCE_CREATION_REQUEST)
        # Validated for creation, the model holds no read-only attribute any more
        # (scim2-models drops them, RFC 7643 §7): the plain dump equals the request
        # dump, which would look for them again, at half the cost.
        return self._storable(kind, model, Context.DEFAULT)

    def draft(
        self,
        kind: ResourceKind,
        body: dict[str, Any],
        tenant: Tenant,
        resource_id: str | None = None,
    ) -> Draft:
        """What ``create`` does before its transaction: validation, the domain's preparation
        and the search keys, in Python only. Bulk drafts many, then checks and writes them
        together (``CreateBatch``)."""
        draft = Draft(kind, resource_id or str(uuid.uuid4()), body)
        try:
            if kind.name == "Group":  # its members are the model's
                model = self._validate(kind, body, Context.RESOURCE_CREATION_REQUEST)
                draft.members = _members(getattr(model, "members", None))
                draft.document = self._storable(kind, model, Context.DEFAULT)
            else:
                draft.document = self.creations.document(
                    kind.model, partial(self.new_document, kind), body
                )
        except SCIMException as error:
            draft.invalid = error
            return draft
        try:
            draft.keys = self._keys(kind, draft.document, None, tenant)
        except SCIMException as error:
            draft.refused = error
        return draft

    @asynccontextmanager
    async def create_batch(self, caller: Caller) -> AsyncIterator[CreateBatch]:
        """One transaction for many creates (see ``CreateBatch``), committed on leaving.

        An exception rolls back all of them. BatchConflict means that a concurrent request
        took a unique key, or removed a member, between a lookup and the writes.
        """
        outbox = self.outbox(caller)
        async with self.engine.begin() as connection:
            repository = _repository(connection, caller)
            await repository.plan_for_parameters()
            yield CreateBatch(repository, caller, outbox)
        self.committed(outbox)

    def outbox(self, caller: Caller) -> Outbox:
        """The security events of one transaction for ``caller``'s organisation."""
        return Outbox.of(self.domain, caller.tenant)

    def committed(self, outbox: Outbox) -> None:
        """After the commit of a transaction: delivery is woken if it wrote events."""
        if outbox.written:
            self.events_committed()

    async def _reload(
        self, repository: Repository, kind: ResourceKind, resource_id: str, plan: Plan
    ) -> Row[Any]:
        row = await repository.get(kind.name, resource_id, relations=self._relations(kind, plan))
        assert row is not None
        return row

    async def _as_written(
        self,
        repository: Repository,
        kind: ResourceKind,
        row: Row[Any],
        stored: Stored | None,
        plan: Plan | None,
    ) -> Row[Any] | Stored | None:
        """What a write answers with, when ``plan`` asks for it: a group read again (its
        members may have changed); any other resource as ``_locked`` read it (``row``, with
        its relations) and the write stored it (``stored``; None: not changed)."""
        if plan is None:
            return None
        if kind.name == "Group":
            return await self._reload(repository, kind, row.id, plan)
        if stored is None:
            return row
        return stored._replace(relations=getattr(row, "relations", _NOT_READ))

    def _unchanged_relations(self, kind: ResourceKind, plan: Plan | None) -> Fields | None:
        """What ``plan`` shows of a resource's relations that a write of it cannot change (a
        User's groups), read with the resource so that the answer needs no read after the
        write; None for a group (its members are read again) or without a plan."""
        if plan is None or kind.name == "Group":
            return None
        return self._relations(kind, plan)

    async def _ahead(
        self,
        caller: Caller,
        kind: ResourceKind,
        resource_id: str,
        if_match: str | None,
        relations: Fields | None = None,
    ) -> Row[Any] | None:
        """The resource as stored now, read before a write's transaction to make the write
        on it; None if there is none, or the request would fail on If-Match instead (the
        transaction gives those answers)."""
        repository = _repository(self.read_engine, caller)
        row = await repository.get(kind.name, resource_id, relations=relations)
        if row is None or not if_match_allows(if_match, row.version):
            return None
        return row

    async def _locked(
        self,
        repository: Repository,
        kind: ResourceKind,
        resource_id: str,
        if_match: str | None,
        plan: Plan | None = None,
    ) -> Row[Any]:
        """The resource, locked for the write; with what ``plan`` shows of its relations
        when the write cannot change them (a User's groups), so that the answer needs no
        read after the write (``_as_written``)."""
        relations = self._unchanged_relations(kind, plan)
        row = await repository.get(kind.name, resource_id, relations=relations, for_update=True)
        if row is None:
            raise NotFoundException(detail=f"{kind.name} {resource_id} not found")
        if not if_match_allows(if_match, row.version):
            raise PreconditionFailedException(
                detail=f"If-Match does not match the current version {etag(row.version)}"
            )
        return row

    @_again_if_a_member_went
    async def replace(
        self,
        caller: Caller,
        kind: ResourceKind,
        resource_id: str,
        body: dict[str, Any],
        if_match: str | None,
        plan: Plan | None,
    ) -> Written:
        """RFC 7644 §3.5.1."""
        model = self._validate(kind, body, Context.RESOURCE_REPLACEMENT_REQUEST)
        new_members = _members(getattr(model, "members", None)) if kind.name == "Group" else []
        ahead: tuple[Row[Any], dict[str, Any]] | None = None
        if self._alone(kind):
            relations = self._unchanged_relations(kind, plan)
            row = await self._ahead(caller, kind, resource_id, if_match, relations)
            if row is not None:
                ahead = row, self._replaced(kind, model, row)
                answer = await self._written_alone(
                    caller, kind, ahead, "replace", body, plan, unless_same=True
                )
                if answer is not None:
                    return answer
        outbox = self.outbox(caller)
        async with self.engine.begin() as connection:
            repository = _repository(connection, caller)
            row = await self._locked(repository, kind, resource_id, if_match, plan)
            if ahead is None:
                document = self._replaced(kind, model, row)
            elif ahead[0].version == row.version:
                document = ahead[1]
            else:  # the model holds what replacing the version read kept of it
                model = self._validate(kind, body, Context.RESOURCE_REPLACEMENT_REQUEST)
                document = self._replaced(kind, model, row)
            members_changed = False
            affected = None
            if kind.name == "Group":
                affected = await self._members_before(
                    repository, outbox, row, document, [m for m, _ in new_members], everyone=True
                )
                members_changed = await self._replace_members(repository, resource_id, new_members)
            # A resource sent back as it was read changes nothing, its version included.
            stored = await self._write(
                repository, caller, kind, row, document, unless_same=True, outbox=outbox, event=PUT
            )
            changed = stored is not None
            touched = members_changed and not changed
            if touched and not await repository.touch(resource_id, row.version, datetime.now(UTC)):
                raise PreconditionFailedException(
                    detail="The resource was changed by another request"
                )
            version = row.version + (1 if changed or members_changed else 0)
            if changed or members_changed:
                await self._audit(connection, caller, kind, "replace", resource_id, body)
            await self._members_after(repository, outbox, affected)
            await outbox.flush(connection)
            written = await self._as_written(repository, kind, row, stored, plan)
        self.committed(outbox)
        return self._written(caller, kind, resource_id, version, written, plan)

    def _replaced(self, kind: ResourceKind, model: Resource[Any], row: Row[Any]) -> dict[str, Any]:
        """The document to store for a replacement (``model``) of ``row``: RFC 7643 §7's
        mutability kept (``Resource.replace``, which changes ``model``)."""
        model.replace(self._stored_model(kind, row))
        return self._storable(kind, model)

    def _written(
        self,
        caller: Caller,
        kind: ResourceKind,
        resource_id: str,
        version: int,
        row: Row[Any] | Stored | None,
        plan: Plan | None,
    ) -> Written:
        """What a write answers: the resource as ``row`` holds it, when a ``plan`` asks."""
        location = self.location(caller, kind, resource_id)
        if row is None or plan is None:
            return Written(None, version, location)
        return Written(self.render(caller, kind, row, plan), row.version, location)

    def _keys(
        self,
        kind: ResourceKind,
        document: dict[str, Any],
        previous: dict[str, Any] | None,
        tenant: Tenant,
    ) -> dict[str, Any]:
        """What a write of ``document`` over ``previous`` must pass besides validation: the
        domain's preparation; then the search keys of the document as it will be stored.

        The domain completes ``document`` in place: first it gets its own copy of what it
        shares with ``previous`` (a PATCH's assignments keep what they do not change), so that
        ``previous`` stays the version as stored, which the write is compared with."""
        if previous is not None:
            _unshare(document, previous)
        self.domain.prepare(kind.name, document, previous, tenant)
        keys = search_keys(document, kind.person(document))
        _check_lengths(kind, keys)
        return keys

    async def _write(
        self,
        repository: Repository,
        caller: Caller,
        kind: ResourceKind,
        row: Row[Any],
        document: dict[str, Any],
        *,
        unless_same: bool = False,
        outbox: Outbox | None = None,
        event: str = PATCH,
    ) -> Stored | None:
        """Store ``document`` as the next version of ``row``; with ``unless_same``, not if it
        is what is stored. What was stored (None: nothing). A user's change that ``outbox``
        is to hear of is told as ``event``."""
        keys = self._keys(kind, document, row.data, caller.tenant)
        if unless_same and document == row.data:
            return None
        before: View | None = None
        if (
            outbox is not None
            and kind.name == "User"
            and outbox.inputs_differ(row.data, document)
            and await outbox.hears(repository.connection)
        ):
            before = (await outbox.views(repository, [row.id])).get(row.id)
        stored, values = _next_version(row, document, keys)
        try:
            written = await repository.update(row.id, row.version, values)
        except UniquenessConflict as error:
            raise _taken(kind, document, error) from error
        if not written:
            raise PreconditionFailedException(detail="The resource was changed by another request")
        # A new person key must not name an administrator. Asked after the write, so that an
        # administrator added meanwhile is seen (``identities.hold_users``).
        person = kind.person(document)
        if person and person != kind.person(row.data) and await repository.is_administrator(person):
            raise _administrator(person)
        if outbox is not None and before is not None:
            outbox.compare(row.id, before, outbox.view(document, before.related), event)
        return stored

    async def _members_before(
        self,
        repository: Repository,
        outbox: Outbox,
        row: Row[Any],
        document: dict[str, Any] | None,
        named: Iterable[str] = (),
        *,
        everyone: bool = False,
        steps: Sequence[tuple[membership.Step, list[filters.Selection]]] = (),
    ) -> tuple[list[str], dict[str, View]] | None:
        """For a write of a group (``row``, to be ``document``; None: deleted): the users
        whose view it may change (``named``, those PATCH ``steps`` name, or with ``everyone``
        all members too), and their views before it. None if it changes nobody's (the group
        gives nothing, before or after) or nobody hears of it: then nothing is read."""
        after = row.data if document is None else document
        if not (
            outbox.group_grants(row.data) or outbox.group_grants(after)
        ) or not await outbox.hears(repository.connection):
            return None
        ids = set(named)
        if steps:
            stepped, all_of_them = await self._named_members(repository, row.id, steps)
            ids |= stepped
            everyone = everyone or all_of_them
        if everyone or outbox.relation_fields(row.data) != outbox.relation_fields(after):
            ids.update(await repository.member_list(row.id))
        return list(ids), await outbox.views(repository, ids)

    @staticmethod
    async def _members_after(
        repository: Repository, outbox: Outbox, before: tuple[list[str], dict[str, View]] | None
    ) -> None:
        """The events of a group's write for the users ``_members_before`` named."""
        if before is not None:
            ids, views = before
            outbox.compare_all(views, await outbox.views(repository, ids), ["groups"])

    async def _replace_members(
        self, repository: Repository, group_id: str, new_members: list[Member]
    ) -> bool:
        """The group's members made ``new_members``; whether that changed any."""
        new_members = await self._check_members(repository, group_id, new_members)
        if set(new_members) == await repository.members_of(group_id):
            return False
        await repository.remove_members(group_id, None)
        await repository.add_members(group_id, new_members)
        return True

    @_again_if_a_member_went
    async def patch(
        self,
        caller: Caller,
        kind: ResourceKind,
        resource_id: str,
        body: dict[str, Any],
        if_match: str | None,
        plan: Plan | None,
    ) -> Written:
        """RFC 7644 §3.5.2. Group membership is changed in SQL, one row per member."""
        operations = body.get("Operations") if isinstance(body, dict) else None
        if not isinstance(operations, list) or not operations:
            raise InvalidValueException(detail="Operations must hold one or more operations")
        limit = self.settings.max_patch_operations
        if len(operations) > limit:
            # As Bulk's maxOperations (RFC 7644 §3.7.4); advertised as patch.maxOperations.
            error = PayloadTooLargeException(
                detail=f"The request holds {len(operations)} operations; at most {limit} are "
                "taken (patch.maxOperations): send the rest in another request"
            )
            error.scim_type = "tooMany"
            raise error
        operations = _without_own_id(operations, resource_id)
        # Member changes are read, and their filters compiled, before the transaction
        # begins: on SQLite it holds the database's one write lock.
        member_steps: list[tuple[membership.Step, list[filters.Selection]]] = []
        if kind.name == "Group":
            operations, member_operations = membership.split(operations)
            json = JsonSql(self.engine.dialect.name)
            member_steps = [
                (step, list(filters.member_selections(json, step.wheres)))
                for step in membership.steps(member_operations)
            ]
        patch = self._operations(kind, body, operations) if operations else None
        if patch is None:
            _check_patch_schemas(body)
        refused: SCIMException | None = None
        if any(step.action is membership.Action.ADD for step, _ in member_steps):
            member_steps, refused = await self._members_checked(caller, resource_id, member_steps)
        members_only = patch is None and refused is None and if_match is None and plan is None
        if members_only and self._members_alone(member_steps):
            answer = await self._members_written_alone(
                caller, kind, resource_id, member_steps, body
            )
            if answer is not None:
                return answer

        # Many operations are applied to the stored version before the transaction, so that
        # however many they are the write lock is held only to write (again inside it only if
        # the resource changed meanwhile). A few cost less than the extra read, except where
        # the write may then need no transaction at all (``_written_alone``).
        alone = self._alone(kind)
        applied = None
        if patch is not None and (alone or len(operations) > _APPLIED_AHEAD):
            relations = self._unchanged_relations(kind, plan) if alone else None
            applied = await self._patched_ahead(
                caller, kind, resource_id, if_match, patch, relations
            )
        if alone and applied is not None:
            ahead = applied[0], applied[2] if applied[1] else None
            answer = await self._written_alone(caller, kind, ahead, "patch", body, plan)
            if answer is not None:
                return answer
        outbox = self.outbox(caller)
        async with self.engine.begin() as connection:
            repository = _repository(connection, caller)
            row = await self._locked(repository, kind, resource_id, if_match, plan)
            if refused is not None:
                raise refused  # once the group is known to be there (404 first)
            changed = False
            document = None
            stored = None
            if patch is not None:
                if applied is None or applied[0].version != row.version:
                    applied = (row, *self._patched(kind, row, patch))
                changed, document = applied[1], applied[2]
            affected = None
            if kind.name == "Group":
                affected = await self._members_before(
                    repository, outbox, row, document, steps=member_steps
                )
            if document is not None:
                stored = await self._write(repository, caller, kind, row, document, outbox=outbox)
            members_changed = False
            for step, selections in member_steps:
                members_changed |= await self._apply_member_step(
                    repository, resource_id, step, selections
                )
            if (
                members_changed
                and not changed
                and not await repository.touch(resource_id, row.version, datetime.now(UTC))
            ):
                raise PreconditionFailedException(
                    detail="The resource was changed by another request"
                )
            if changed or members_changed:
                await self._audit(connection, caller, kind, "patch", resource_id, body)
            await self._members_after(repository, outbox, affected)
            await outbox.flush(connection)
            version = row.version + (1 if changed or members_changed else 0)
            written = await self._as_written(repository, kind, row, stored, plan)
        self.committed(outbox)
        return self._written(caller, kind, resource_id, version, written, plan)

    def _members_alone(
        self, steps: Sequence[tuple[membership.Step, list[filters.Selection]]]
    ) -> bool:
        """Whether a PATCH of members may be written in one statement
        (``_members_written_alone``): on PostgreSQL, where its steps all add members, or all
        remove members named by id (Entra ID's value list, or ``members[value eq "…"]``)."""
        if not steps or self.read_engine.dialect.name != "postgresql":
            return False
        if all(step.action is membership.Action.ADD for step, _ in steps):
            return True
        return all(step.action is membership.Action.REMOVE and not step.wheres for step, _ in steps)

    async def _members_written_alone(
        self,
        caller: Caller,
        kind: ResourceKind,
        group_id: str,
        steps: Sequence[tuple[membership.Step, list[filters.Selection]]],
        body: dict[str, Any],
    ) -> Written | None:
        """A PATCH that adds members (checked: ``_members_checked``) or removes them, with no
        If-Match and no representation asked for (as Entra ID and Okta send them), written in
        one statement with no transaction around it (``Repository.add_members_recorded``,
        ``remove_members_recorded``). The group's lock is then held for that statement and
        its commit, not for the transaction's five round trips: many clients changing the
        members of one group queue on it for that long.

        None where the write is the transaction's: no such group (404), or a receiver that
        hears the organisation's events (which tell whose permissions the group changed)."""
        record = _audited(caller, kind, "patch", group_id, body, datetime.now(UTC))
        repository = _repository(self.read_engine, caller)
        if steps[0][0].action is membership.Action.ADD:
            added: dict[str, str | None] = {}
            for step, _ in steps:
                for member_id, display in step.members:
                    added.setdefault(member_id, display)  # as a second ADD would: no change
            version = await repository.add_members_recorded(group_id, list(added.items()), record)
        else:
            ids = sorted({member_id for step, _ in steps for member_id in step.ids})
            version = await repository.remove_members_recorded(group_id, ids, record)
        if version is None:
            return None
        return Written(None, version, self.location(caller, kind, group_id))

    async def _written_alone(
        self,
        caller: Caller,
        kind: ResourceKind,
        ahead: tuple[Row[Any], dict[str, Any] | None],
        action: str,
        body: dict[str, Any],
        plan: Plan | None,
        *,
        unless_same: bool = False,
    ) -> Written | None:
        """PostgreSQL: a PATCH or PUT of a resource that is not a group, made ahead on
        ``row`` as read (``document``; None: it changes nothing), written in one statement
        with no transaction around it: the document and its audit record, if the version
        read is still the one stored (``Repository.update_recorded``). One round trip instead
        of five (BEGIN, the locked read, UPDATE, INSERT, COMMIT); a write that lands in
        between makes it write nothing. With ``unless_same``, a document that is what is
        stored is not written (``_write``).

        None where the write takes the transaction: another request wrote first, or the
        write needs more than itself: a new person key (the check for an administrator after
        the write) or a change that security events may tell (``Outbox.inputs_differ``)."""
        row, document = ahead
        if document is not None:
            # As ``_write``: the document as the domain prepares it is what is compared.
            keys = self._keys(kind, document, row.data, caller.tenant)
            if unless_same and document == row.data:
                document = None
        if document is None:
            # Nothing to write: the resource as it was read, as the transaction answers.
            return self._written(caller, kind, row.id, row.version, row, plan)
        person_changed = kind.person(document) != kind.person(row.data)
        if person_changed or self.outbox(caller).inputs_differ(row.data, document):
            return None
        stored, values = _next_version(row, document, keys)
        record = _audited(caller, kind, action, row.id, body)
        repository = _repository(self.read_engine, caller)
        try:
            if not await repository.update_recorded(row.id, row.version, values, record):
                return None
        except UniquenessConflict as error:
            raise _taken(kind, document, error) from error
        written = stored._replace(relations=getattr(row, "relations", _NOT_READ))
        return self._written(caller, kind, row.id, stored.version, written, plan)

    async def _patched_ahead(
        self,
        caller: Caller,
        kind: ResourceKind,
        resource_id: str,
        if_match: str | None,
        patch: _Operations,
        relations: Fields | None = None,
    ) -> tuple[Row[Any], bool, dict[str, Any] | None] | None:
        """``_patched`` on the stored version as read now (``_ahead``), and that row."""
        row = await self._ahead(caller, kind, resource_id, if_match, relations)
        if row is None:
            return None
        # A refusal here is the answer the request would have had a moment ago: it changes
        # nothing, so it may be given without the transaction.
        return (row, *self._patched(kind, row, patch))

    def _patched(
        self, kind: ResourceKind, row: Row[Any], patch: _Operations
    ) -> tuple[bool, dict[str, Any] | None]:
        """RFC 7644 §3.5.2: the operations applied to the stored ``row`` in turn; whether
        they changed it, and the document to store if they did."""
        if patch.writes is not None:
            assigned = self.assignments.assign(row.data, patch.writes)
        else:
            assigned = self.assignments.apply(kind, row.data, patch.patch())
        if assigned is not None:
            changed, document = assigned
            return (True, document) if changed else (False, None)
        return self._patched_as_model(kind, row, patch.patch())

    def _patched_as_model(
        self, kind: ResourceKind, row: Row[Any], patch: PatchOp[Any]
    ) -> tuple[bool, dict[str, Any] | None]:
        """``_patched`` by scim2-models, on the resource's model."""
        model = self._stored_model(kind, row)
        try:
            with self.registry.provider:
                changed = patch.patch(model)
        except ValidationError as error:
            raise from_validation(error) from error
        except InvalidValueException as error:
            # scim2-models words a value of the wrong type as pydantic's whole report
            # (Python field names, a URL): say it as for any other write.
            cause = error.__cause__
            if not isinstance(cause, ValidationError):
                raise
            refused = from_validation(cause)
            if "[" not in cause.title and isinstance(refused, InvalidValueException):
                # A sub-attribute's type (Email, Permission): say which.
                refused = InvalidValueException(detail=f"{cause.title} {refused.detail}")
            raise refused from error
        if not changed:
            return False, None
        _require_text(kind, model)
        return True, self._storable(kind, model)

    def _operations(
        self, kind: ResourceKind, body: dict[str, Any], operations: list[Any]
    ) -> _Operations:
        """A PATCH's ``operations`` (those of members apart): assignments as sent, which need
        no PatchOp (Entra ID's and Okta's: ``assignments.as_sent``), or validated by
        scim2-models now, so that a body it refuses is refused before any other work."""
        validate = partial(self._parse_patch, kind, body, operations)
        taken = as_sent(body, operations)
        writes = None if taken is None else self.assignments.writes(kind, taken)
        if writes is None:
            return _Operations(None, validate, validate())
        _check_patch_schemas(body)
        return _Operations(writes, validate)

    def _parse_patch(
        self, kind: ResourceKind, body: dict[str, Any], operations: list[Any]
    ) -> PatchOp[Any]:
        payload = {**body, "Operations": operations}
        try:
            with self.registry.provider:
                return self.patches.validate(kind.model, payload)
        except ValidationError as error:
            raise from_validation(error) from error

    @staticmethod
    async def _named_members(
        repository: Repository,
        group_id: str,
        steps: Sequence[tuple[membership.Step, list[filters.Selection]]],
    ) -> tuple[set[str], bool]:
        """The members PATCH steps name (ids, and those their filters select now), and
        whether a step concerns every member (replace, remove all)."""
        named: set[str] = set()
        for step, selections in steps:
            if step.action in (membership.Action.REPLACE, membership.Action.CLEAR):
                return named, True
            named.update(member_id for member_id, _ in step.members)
            named.update(step.ids)
            for rows, condition in selections:
                named.update(await repository.member_ids(group_id, rows, condition))
        return named, False

    async def _members_checked(
        self,
        caller: Caller,
        group_id: str,
        steps: list[tuple[membership.Step, list[filters.Selection]]],
    ) -> tuple[list[tuple[membership.Step, list[filters.Selection]]], SCIMException | None]:
        """The members each step adds, looked up (``_check_members``) before the write's
        transaction, so that the group's lock is held only to write them; and the refusal
        of one, to be given once the group is found. One deleted after the look-up fails
        the write's foreign key, and the write is tried again (``_again_if_a_member_went``),
        its look-up then refusing the member."""
        checked = []
        async with self.read_engine.connect() as connection:
            repository = _repository(connection, caller)
            for step, selections in steps:
                if step.action is membership.Action.ADD:
                    try:
                        members = await self._check_members(repository, group_id, step.members)
                    except SCIMException as refusal:
                        return steps, refusal
                    step = replace(step, members=members)
                checked.append((step, selections))
        return checked, None

    async def _apply_member_step(
        self,
        repository: Repository,
        group_id: str,
        step: membership.Step,
        selections: list[filters.Selection],
    ) -> bool:
        """One step of a PATCH of members (its filters compiled to ``selections``), in a
        statement or two; whether it changed any."""
        action = step.action
        if action is membership.Action.REPLACE:
            return await self._replace_members(repository, group_id, step.members)
        if action is membership.Action.ADD:  # checked by ``_members_checked``
            return bool(await repository.add_members(group_id, step.members))
        if action is membership.Action.CLEAR:
            return bool(await repository.remove_members(group_id, None))
        removed = await repository.remove_members(group_id, step.ids)
        for rows, condition in selections:
            ids = await repository.member_ids(group_id, rows, condition)
            removed += await repository.remove_members(group_id, ids)
        return bool(removed)

    async def delete(
        self, caller: Caller, kind: ResourceKind, resource_id: str, if_match: str | None
    ) -> None:
        outbox = self.outbox(caller)
        async with self.engine.begin() as connection:
            repository = _repository(connection, caller)
            row = await self._locked(repository, kind, resource_id, if_match)
            affected = None
            before: dict[str, View] = {}
            if kind.name == "Group":
                affected = await self._members_before(repository, outbox, row, None, everyone=True)
            elif await outbox.hears(connection):
                before = await outbox.views(repository, [resource_id])
            await repository.delete(kind.name, resource_id)
            await self._audit(connection, caller, kind, "delete", resource_id, None)
            if resource_id in before:
                outbox.compare(resource_id, before[resource_id], None)
            await self._members_after(repository, outbox, affected)
            await outbox.flush(connection)
        self.committed(outbox)

    @staticmethod
    async def _audit(
        connection: AsyncConnection,
        caller: Caller,
        kind: ResourceKind,
        action: str,
        resource_id: str,
        body: dict[str, Any] | None,
    ) -> None:
        """The change as the client asked for it, minus secrets."""
        await audit.record(connection, **_audited(caller, kind, action, resource_id, body))


class CreateBatch:
    """Creates checked together and written together, in one transaction.

    ``admit`` makes, in the same order, every check ``create`` makes in its own
    transaction, from what ``look_up`` found for many drafts at once and from the drafts
    admitted before: each draft is admitted or refused as if it had been created alone,
    after those. ``write`` writes what was admitted since it last ran. Any number of
    rounds of the three may follow each other within the transaction.
    """

    def __init__(
        self, repository: Repository, caller: Caller, outbox: Outbox, *, probe_keys: bool = True
    ) -> None:
        self.repository = repository
        self.caller = caller
        self.outbox = outbox
        # A single create leaves its unique keys to the unique indexes, and administrators to
        # the check after its write, two round trips less: a taken key fails the insert
        # (UniquenessConflict), an administrator the check (BatchConflict), reported as admit
        # would after a look-up.
        self.probe_keys = probe_keys
        # Ids of this organisation's resources, as far as members need them.
        self.existing: set[str] = set()
        # Unique keys taken, by stored resources or admitted drafts.
        self.user_names: set[str] = set()
        self.person_keys: set[str] = set()
        self.administrators: set[str] = set()
        self.admitted: list[Draft] = []
        # When the last ``write`` stored its drafts (their created and lastModified).
        self.written_at = datetime.now(UTC)

    async def look_up(self, drafts: Sequence[Draft]) -> None:
        """What ``admit`` needs to know of the stored resources for these drafts: at most
        three statements, whatever their number."""
        valid = [draft for draft in drafts if draft.invalid is None]
        prepared = [draft for draft in valid if draft.refused is None]
        own = {draft.resource_id for draft in drafts}
        member_ids = {
            member_id
            for draft in valid
            for member_id, _ in draft.members
            if member_id not in own and member_id not in self.existing
        }
        persons = {person for d in prepared if (person := d.kind.person(d.document))}
        self.existing.update(await self.repository.existing(member_ids))
        if self.probe_keys:
            user_names = {k for d in prepared if (k := d.keys["user_name_key"]) is not None}
            person_keys = {k for d in prepared if (k := d.keys["hsa_id_key"]) is not None}
            taken_user_names, taken_person_keys = await self.repository.taken(
                user_names - self.user_names, person_keys - self.person_keys
            )
            self.user_names |= taken_user_names
            self.person_keys |= taken_person_keys
            self.administrators |= await self.repository.administrators(persons)

    def admit(self, draft: Draft) -> SCIMException | None:
        """None when ``draft`` is to be written, else the error ``create`` would raise."""
        if draft.invalid is not None:
            return draft.invalid
        try:
            _check_member_displays(draft.members)
            _check_member_ids(draft.resource_id, draft.members, self.existing)
        except SCIMException as error:
            return error
        if draft.refused is not None:
            return draft.refused
        person = draft.kind.person(draft.document)
        if person and person in self.administrators:
            return _administrator(person)
        # RFC 7643 §4.1: userName (and the person key) is unique within the organisation,
        # against what is stored and what this batch has admitted before.
        user_name = draft.keys["user_name_key"]
        if user_name is not None and user_name in self.user_names:
            return _taken_key(draft.kind, draft.document, person_key=False)
        person_key = draft.keys["hsa_id_key"]
        if person_key is not None and person_key in self.person_keys:
            return _taken_key(draft.kind, draft.document, person_key=True)
        if user_name is not None:
            self.user_names.add(user_name)
        if person_key is not None:
            self.person_keys.add(person_key)
        self.existing.add(draft.resource_id)
        self.admitted.append(draft)
        return None

    async def write(self) -> None:
        """The drafts admitted since the last write, as ``create`` writes each: resource,
        members, audit record; one COPY or statement for each of the three
        (``Repository.insert_rows``)."""
        admitted, self.admitted = self.admitted, []
        if not admitted:
            return
        now = self.written_at = datetime.now(UTC)
        caller = self.caller
        await self.repository.insert_many([draft.row(now) for draft in admitted])
        # No user may be an administrator. Asked after the write, so that an administrator
        # added meanwhile is seen (``identities.hold_users``); one statement for the batch.
        persons = {person for draft in admitted if (person := draft.kind.person(draft.document))}
        if persons and await self.repository.administrators(persons):
            raise BatchConflict("an administrator has the person key of a user written")
        outbox = self.outbox
        affected: set[str] = set()
        before: dict[str, View] = {}
        if outbox.listening:
            # A new user's events are made in memory, and kept only if heard (``flush``).
            for draft in admitted:
                if draft.kind.name == "User":
                    outbox.compare(draft.resource_id, None, outbox.view(draft.document, ()))
            affected = {
                member_id
                for draft in admitted
                if draft.members and outbox.group_grants(draft.document)
                for member_id, _ in draft.members
            }
            if affected and await outbox.hears(self.repository.connection):
                before = await outbox.views(self.repository, affected)
            else:
                affected = set()
        await self.repository.insert_memberships(
            (draft.resource_id, member_id, display)
            for draft in admitted
            for member_id, display in dict(draft.members).items()
        )
        if affected:
            outbox.compare_all(before, await outbox.views(self.repository, affected), ["groups"])
        await self.repository.insert_audit(
            [
                _audited(caller, draft.kind, "create", draft.resource_id, draft.body, now)
                for draft in admitted
            ],
        )
        await outbox.flush(self.repository.connection)


def _next_version(
    row: Row[Any], document: dict[str, Any], keys: dict[str, Any]
) -> tuple[Stored, dict[str, Any]]:
    """``document`` stored as the next version of ``row``, and the values of its columns."""
    stored = Stored(row.id, document, row.created, datetime.now(UTC), row.version + 1, None)
    values = {"data": document, "version": stored.version, "last_modified": stored.last_modified}
    return stored, {**values, **keys}


def _audited(
    caller: Caller,
    kind: ResourceKind,
    action: str,
    resource_id: str,
    body: Any,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The audit record of a change as the client asked for it, minus secrets."""
    return audit.entry(
        tenant_id=caller.tenant_id,
        actor=caller.actor,
        action=f"{kind.name}.{action}",
        resource_type=kind.name,
        resource_id=resource_id,
        changes=_redacted(body),
        at=at,
    )


def _repository(source: direct.Source, caller: Caller) -> Repository:
    return Repository(source, caller.tenant.id, caller.base_url)


def _taken(
    kind: ResourceKind, document: dict[str, Any], error: UniquenessConflict
) -> UniquenessException:
    """Which unique key a write hit, from the database's own message."""
    if error.key == "display_name_key":
        return UniquenessException(
            detail=f"displayName {document.get('displayName')!r} is already used by a group "
            "in this organisation"
        )
    return _taken_key(kind, document, person_key=error.key == "hsa_id_key")


def _taken_key(
    kind: ResourceKind, document: dict[str, Any], *, person_key: bool
) -> UniquenessException:
    if person_key and kind.person_key is not None:
        name, value = kind.person_key[1], kind.person(document)
        return UniquenessException(detail=f"{name} {value!r} is already used in this organisation")
    return UniquenessException(detail=f"userName {document.get('userName')!r} is already taken")


def _administrator(person: str) -> ConflictException:
    # Administrator and user are exclusive roles within an organisation: a certificate
    # naming the person must single out one of them (scim.auth.authenticate).
    return ConflictException(
        detail=f"{person} is an administrator of this organisation, and an "
        "administrator cannot also be a user: the operator must first remove the "
        "administrator role"
    )


def _unshare(document: dict[str, Any], previous: dict[str, Any]) -> None:
    """Replace what ``document`` holds of ``previous`` itself (the same object) by a copy."""
    for name, value in document.items():
        before = previous.get(name)
        if value is before and isinstance(value, dict | list):
            document[name] = msgspec.json.decode(msgspec.json.encode(value))
        elif isinstance(value, dict) and isinstance(before, dict):
            _unshare(value, before)
        elif isinstance(value, list) and isinstance(before, list):
            kept = {id(item) for item in before}
            for index, item in enumerate(value):
                if id(item) in kept and isinstance(item, dict | list):
                    value[index] = msgspec.json.decode(msgspec.json.encode(item))


def _check_member_displays(new_members: list[Member]) -> None:
    limit = MEMBER_DISPLAY_LIMIT
    if any(display is not None and len(display) > limit for _, display in new_members):
        raise InvalidValueException(detail=f"members: a display is longer than {limit} characters")


def _check_member_ids(group_id: str, new_members: list[Member], found: Container[str]) -> None:
    """Every member is a resource of the organisation (``found``), and not the group itself."""
    for member_id, _ in new_members:
        if member_id not in found:
            raise InvalidValueException(
                detail=f"members: no User or Group with id {member_id!r} in this organisation"
            )
    if any(member_id == group_id for member_id, _ in new_members):
        raise InvalidValueException(detail="members: a group cannot be a member of itself")


def _redacted(value: Any) -> Any:
    """A request body for the audit log, without the passwords it may carry."""
    # Most bodies name no password anywhere: one encode and search (in C) tells, and such
    # a body is logged as it is, without walking it.
    try:
        text = msgspec.json.encode(value).decode()
    except TypeError:  # not JSON (a caller in Python): walk it
        return _redact(value)
    return _redact(value) if "password" in text.lower() else value


def _redact(value: Any) -> Any:
    if isinstance(value, list):
        return [_redact(item) for item in value]
    if not isinstance(value, dict):
        return value
    hidden = _names_password(value.get("path", ""))
    return {
        key: "(hidden)" if _names_password(key) or (hidden and key == "value") else _redact(item)
        for key, item in value.items()
    }


def _names_password(name: Any) -> bool:
    """``password``, also fully qualified (``urn:...:core:2.0:User:password``, RFC 7644 §3.10)."""
    lowered = str(name).strip().lower()
    return lowered == "password" or lowered.endswith(":password")


def _require_text(kind: ResourceKind, model: Resource[Any]) -> None:
    """RFC 7643 §2.2: a required string must hold a value; blank is none."""
    for name in kind.required_strings:
        value = getattr(model, name, None)
        if isinstance(value, str) and not value.strip():
            field = kind.model.model_fields[name]
            scim_name = field.serialization_alias or field.alias or name
            raise InvalidValueException(detail=f"{scim_name} must not be empty")


# The attribute each length-limited search key is derived from (see ``search_keys``).
_KEY_ATTRIBUTES = {
    "external_id": "externalId",
    "user_name_key": "userName",
    "display_name_key": "displayName",
    "family_name_key": "name.familyName",
    "given_name_key": "name.givenName",
    "display_name_sort": "displayName",
    "family_name_sort": "name.familyName",
    "given_name_sort": "name.givenName",
    "display": "displayName",
}


def _check_lengths(kind: ResourceKind, keys: dict[str, Any]) -> None:
    """The search keys are bounded columns; a longer value is invalidValue, not a 500."""
    for column, value in keys.items():
        limit = KEY_LIMITS.get(column)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            name = _KEY_ATTRIBUTES.get(column, column)
            if column == "hsa_id_key" and kind.person_key is not None:
                name = kind.person_key[1]
            raise InvalidValueException(
                detail=f"{name} is longer than {limit} characters as compared "
                "(Unicode NFKC, case folded)"
            )


def _without_empty_schemas(kind: ResourceKind, body: dict[str, Any]) -> dict[str, Any]:
    """The body, less the schemas it names that this resource type lacks and under which it
    sends nothing.

    Microsoft Entra ID's Create Group names
    ``http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group`` with no data
    under it. Such a URI says nothing; data under a schema the server lacks is still refused.
    """
    schemas = body.get("schemas") if isinstance(body, dict) else None
    if not isinstance(schemas, list):
        return body
    known = {kind.schema.lower(), *(urn.lower() for urn in kind.extensions)}
    sent = {key.lower() for key in body}
    kept = [
        urn
        for urn in schemas
        if not isinstance(urn, str) or urn.lower() in known or urn.lower() in sent
    ]
    return body if len(kept) == len(schemas) else {**body, "schemas": kept}


def _without_own_id(operations: list[Any], resource_id: str) -> list[Any]:
    """The operations, less any that sets ``id`` to the resource's own id.

    Okta renames a group with ``{"op": "replace", "value": {"id": <its id>, "displayName":
    ...}}``. Giving a read-only attribute the value it has modifies nothing (RFC 7644
    §3.5.2), so it is no attempt to write ``id``; another value still is (400 mutability).
    """
    kept: list[Any] = []
    for operation in operations:
        if isinstance(operation, dict) and str(operation.get("op", "")).lower() in (
            "add",
            "replace",
        ):
            path, value = operation.get("path"), operation.get("value")
            if path is None and isinstance(value, dict) and value.get("id") == resource_id:
                value = {key: item for key, item in value.items() if key != "id"}
                if not value:
                    continue
                operation = {**operation, "value": value}
            elif isinstance(path, str) and path.strip().lower() == "id" and value == resource_id:
                continue
        kept.append(operation)
    return kept


def _check_patch_schemas(body: dict[str, Any]) -> None:
    """What scim2-models checks of a PatchOp it parses, for one left with member operations only."""
    schemas = body.get("schemas")
    urn = str(PatchOp.__schema__)
    if schemas is not None and (not isinstance(schemas, list) or urn not in schemas):
        raise InvalidValueException(detail=f"schemas must contain the base schema '{urn}'")


def _members(members: Any) -> list[Member]:
    return [(str(member.value), member.display) for member in members or [] if member.value]
