"""Bulk operations (RFC 7644 §3.7): many writes in one request, each its own transaction.

Operations may refer to resources created earlier *or later* in the same request as
``bulkId:<id>`` (§3.7.2); they run in an order that creates each such resource before
it is referred to, and references that cannot be resolved fail on their own.

POSTs that follow each other in that order (a first sync: thousands of users, then
groups of them) are created together: validated in Python, checked against the database
with a few lookups and written with one COPY (PostgreSQL) or statement per table, in one
transaction; each still gets the outcome it would have had in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from scim2_models import (
    InvalidSyntaxException,
    InvalidValueException,
    PayloadTooLargeException,
    SCIMException,
)

from scim.errors import error_document, internal, unavailable
from scim.hooks import Tenant
from scim.registry import ResourceKind
from scim.service import Caller, CreateBatch, Draft, ResourceService, Written
from scim.storage import database
from scim.storage.repository import BatchConflict

logger = logging.getLogger("scim.bulk")

REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_REFERENCE = re.compile(r"bulkId:([^\s\"/]+)")
_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Fewer POSTs in a row than this are created one by one: a batch costs three lookups.
_BATCH_MIN = 2
# POSTs validated while the ones before are written: each chunk costs up to six statements.
_CHUNK = 200
# Drafts made between two chances for the event loop to go on with the writes.
_YIELD_EVERY = 16


@dataclass
class Operation:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any
    references: set[str] = field(default_factory=set)
    error: SCIMException | None = None


@dataclass
class Outcome:
    """What became of one operation, as the response reports it."""

    operation: Operation
    status: int
    written: Written | None = None
    error: SCIMException | None = None

    def render(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"method": self.operation.method}
        if self.operation.bulk_id is not None:
            entry["bulkId"] = self.operation.bulk_id
        if self.written is not None:
            entry["location"] = self.written.location
            if self.operation.method != "DELETE":
                entry["version"] = f'W/"{self.written.version}"'
        entry["status"] = str(self.status)
        if self.error is not None:
            entry["response"] = error_document(self.error)
        return entry


def _referenced(value: Any) -> set[str]:
    """The bulkIds a value refers to (RFC 7644 §3.7.2: ``bulkId:<id>`` in any string)."""
    # Most operations refer to none: one encode and search (in C) tells, without a walk.
    # The request body was JSON, so it encodes.
    if b"bulkId:" not in msgspec.json.encode(value):
        return set()
    return set(_references(value))


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from _REFERENCE.findall(value)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)


def _substitute(value: Any, created: dict[str, str]) -> Any:
    """Every ``bulkId:<id>`` replaced by the id of the resource that operation created."""
    if isinstance(value, str):
        return _REFERENCE.sub(lambda match: created[match.group(1)], value)
    if isinstance(value, list):
        return [_substitute(item, created) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, created) for key, item in value.items()}
    return value


class BulkService:
    def __init__(self, service: ResourceService) -> None:
        self.service = service
        self.settings = service.settings

    def _parse(self, body: dict[str, Any]) -> tuple[list[Operation], int | None]:
        """The operations of a request, checked as a whole before any is run."""
        schemas = body.get("schemas")
        if not isinstance(schemas, list) or REQUEST_SCHEMA not in schemas:
            raise InvalidValueException(detail=f"schemas must contain {REQUEST_SCHEMA}")
        raw = body.get("Operations")
        if not isinstance(raw, list) or not raw:
            raise InvalidValueException(detail="Operations must hold one or more operations")
        limit = self.settings.max_bulk_operations
        # RFC 7644 §3.7.4: more operations than maxOperations is 413, before anything runs.
        if len(raw) > limit:
            error = PayloadTooLargeException(
                detail=f"The request holds {len(raw)} operations; maxOperations is {limit} "
                f"and maxPayloadSize {self.settings.max_payload_size} bytes"
            )
            error.scim_type = "tooMany"
            raise error
        fail_on_errors = body.get("failOnErrors")
        if fail_on_errors is not None and (
            not isinstance(fail_on_errors, int)
            or isinstance(fail_on_errors, bool)
            or fail_on_errors < 1
        ):
            raise InvalidValueException(detail="failOnErrors must be a positive integer")

        operations: list[Operation] = []
        seen: set[str] = set()
        for index, item in enumerate(raw):
            operation = self._operation(index, item)
            if operation.bulk_id is not None:
                if operation.bulk_id in seen:
                    raise InvalidValueException(
                        detail=f"bulkId {operation.bulk_id!r} is used by more than one operation"
                    )
                seen.add(operation.bulk_id)
            operations.append(operation)
        return operations, fail_on_errors

    def _operation(self, index: int, item: Any) -> Operation:
        if not isinstance(item, dict):
            operation = Operation(index, "", "", None, None, None)
            operation.error = InvalidSyntaxException(detail="An operation is a JSON object")
            return operation
        method = str(item.get("method", "")).upper()
        path = item.get("path")
        bulk_id = item.get("bulkId")
        version = item.get("version")
        operation = Operation(
            index,
            method,
            path if isinstance(path, str) else "",
            bulk_id if isinstance(bulk_id, str) and bulk_id else None,
            version if isinstance(version, str) else None,
            item.get("data"),
        )
        if method not in _METHODS:
            operation.error = InvalidSyntaxException(
                detail=f"method must be one of {', '.join(_METHODS)}, not {item.get('method')!r}"
            )
        elif not operation.path.startswith("/"):
            operation.error = InvalidSyntaxException(
                detail="path must be like /Users or /Users/<id>"
            )
        elif method == "POST" and operation.bulk_id is None:
            operation.error = InvalidSyntaxException(detail="A POST operation needs a bulkId")
        elif method != "DELETE" and not isinstance(operation.data, dict):
            operation.error = InvalidSyntaxException(detail=f"{method} needs data, a JSON object")
        elif bulk_id is not None and not isinstance(bulk_id, str):
            operation.error = InvalidSyntaxException(detail="bulkId must be a string")
        operation.references = _referenced(operation.data) | _referenced(operation.path)
        return operation

    @staticmethod
    def _order(operations: list[Operation]) -> list[Operation]:
        """Request order, except that an operation waits for the POSTs it refers to.

        Operations in a cycle, or referring to no operation, get their error here.
        """
        creators = {op.bulk_id: op for op in operations if op.method == "POST" and op.bulk_id}
        for operation in operations:
            missing = sorted(ref for ref in operation.references if ref not in creators)
            if operation.error is None and missing:
                operation.error = InvalidValueException(
                    detail=f"bulkId:{missing[0]} refers to no POST operation in this request"
                )
        # Kahn's algorithm, always taking the earliest operation that is ready.
        waiting_on = {
            op.index: {creators[ref].index for ref in op.references if ref in creators}
            if op.error is None
            else set()
            for op in operations
        }
        dependents: dict[int, list[int]] = {}
        for index, needed in waiting_on.items():
            for creator in needed:
                dependents.setdefault(creator, []).append(index)
        ready = [index for index, needed in waiting_on.items() if not needed]
        heapq.heapify(ready)
        ordered: list[Operation] = []
        while ready:
            index = heapq.heappop(ready)
            ordered.append(operations[index])
            for dependent in dependents.get(index, []):
                waiting_on[dependent].discard(index)
                if not waiting_on[dependent]:
                    heapq.heappush(ready, dependent)
        # What is left waits on itself through its references: a cycle.
        placed = {op.index for op in ordered}
        for op in operations:
            if op.index not in placed:
                op.error = InvalidValueException(
                    detail=f"Circular bulkId references: {', '.join(sorted(op.references))}"
                )
                ordered.append(op)
        return ordered

    async def execute(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """The BulkResponse (RFC 7644 §3.7.3): runs of POSTs created in batches, every other
        operation by itself, until the end or failOnErrors errors."""
        operations, fail_on_errors = self._parse(body)
        progress = _Progress(fail_on_errors)
        for creating, run in itertools.groupby(
            self._order(operations), key=lambda op: op.method == "POST"
        ):
            if progress.stopped:
                break
            batch = list(run)
            if creating and len(batch) >= _BATCH_MIN:
                await self._create_batch(caller, batch, progress)
            else:
                await self._one_by_one(caller, batch, progress)
        return {
            "schemas": [RESPONSE_SCHEMA],
            "Operations": [progress.outcomes[i].render() for i in sorted(progress.outcomes)],
        }

    async def _one_by_one(
        self, caller: Caller, operations: list[Operation], progress: _Progress
    ) -> None:
        for operation in operations:
            if progress.stopped:
                return
            progress.record(await self._run(caller, operation, progress))

    async def _create_batch(
        self, caller: Caller, operations: list[Operation], progress: _Progress
    ) -> None:
        """POSTs that follow each other, created in one transaction with a few statements.

        Should the writes fail (a concurrent request took a key that the lookups saw
        free), nothing of the batch is kept and its operations run one by one instead, so
        that each still gets exactly the outcome of its own transaction.
        """
        before = progress.copy()
        try:
            with _collection_paused():
                await self._create_together(caller, operations, progress)
            return
        except _CommitFailed:
            # Whether the batch was written is unknown, as for one operation whose commit
            # fails: each that would have been is reported as failed, none is tried again.
            logger.exception("bulk: the commit of a batch failed")
            progress.unsure_since(before)
            return
        except BatchConflict:
            logger.info("bulk: a concurrent write; creating one by one", exc_info=True)
        except Exception:
            logger.warning("bulk: batch failed; creating one by one", exc_info=True)
        progress.restore(before)
        await self._one_by_one(caller, operations, progress)

    async def _create_together(
        self, caller: Caller, operations: list[Operation], progress: _Progress
    ) -> None:
        """Validate in Python chunk by chunk while the chunk before is checked and written.

        The database works on one chunk while Python validates the next: a task admits
        and writes each chunk in order, so admission stays sequential, as one by one.
        """
        # References to POSTs of this batch resolve to the ids they will get if they
        # succeed; ``_admit`` refuses an operation whose references did not.
        ids = dict(progress.created)
        creating = [op.bulk_id for op in operations if op.error is None and op.bulk_id]
        ids.update(zip(creating, _new_ids(len(creating)), strict=True))
        chunks = [operations[i : i + _CHUNK] for i in range(0, len(operations), _CHUNK)]
        drafts = await self._drafts(chunks[0], ids, caller.tenant)
        committing = False
        try:
            async with self.service.create_batch(caller) as batch:
                writing: asyncio.Task[None] | None = None
                try:
                    for number, chunk in enumerate(chunks):
                        if number:
                            drafts = await self._drafts(chunk, ids, caller.tenant)
                            assert writing is not None
                            await writing
                        if progress.stopped:
                            break
                        writing = asyncio.create_task(
                            self._admit_and_write(caller, batch, chunk, drafts, progress)
                        )
                    else:
                        assert writing is not None
                        await writing
                finally:
                    if writing is not None and not writing.done():
                        # Drafting failed: the writes end before the transaction rolls back.
                        await asyncio.wait([writing])
                committing = True
        except Exception as error:
            if committing:
                raise _CommitFailed from error
            raise

    async def _drafts(
        self, operations: list[Operation], ids: dict[str, str], tenant: Tenant
    ) -> dict[int, Draft | SCIMException]:
        """Each operation whose references resolve, validated as ``create`` would, by
        index; a few at a time, so that the writes of the chunk before go on meanwhile."""
        drafts: dict[int, Draft | SCIMException] = {}
        for count, operation in enumerate(operations):
            if count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if operation.error is not None or not operation.references <= ids.keys():
                continue
            try:
                kind = self._creation_kind(operation, ids)
                data = _substitute(operation.data, ids) if operation.references else operation.data
                resource_id = ids[operation.bulk_id] if operation.bulk_id else None
                drafts[operation.index] = self.service.draft(kind, data, tenant, resource_id)
            except SCIMException as error:
                drafts[operation.index] = error
            except Exception:
                logger.exception("bulk operation %s failed", operation.index)
                drafts[operation.index] = internal()
        return drafts

    async def _admit_and_write(
        self,
        caller: Caller,
        batch: CreateBatch,
        operations: list[Operation],
        drafts: dict[int, Draft | SCIMException],
        progress: _Progress,
    ) -> None:
        await batch.look_up([draft for draft in drafts.values() if isinstance(draft, Draft)])
        for operation in operations:
            if progress.stopped:
                break
            draft = drafts.get(operation.index)
            progress.record(self._admit(caller, batch, operation, draft, progress))
        await batch.write()

    def _admit(
        self,
        caller: Caller,
        batch: CreateBatch,
        operation: Operation,
        draft: Draft | SCIMException | None,
        progress: _Progress,
    ) -> Outcome:
        """What ``_run`` would make of a POST, from its draft."""
        refused = operation.error or self._unresolved(operation, progress)
        if refused is None:
            assert draft is not None, "every operation with resolved references has a draft"
            refused = draft if isinstance(draft, SCIMException) else batch.admit(draft)
        if refused is not None:
            return Outcome(operation, refused.status, error=refused)
        assert isinstance(draft, Draft)
        location = self.service.location(caller, draft.kind, draft.resource_id)
        return Outcome(operation, 201, Written(None, 1, location))

    @staticmethod
    def _unresolved(operation: Operation, progress: _Progress) -> SCIMException | None:
        if not operation.references:
            return None
        broken = sorted(ref for ref in operation.references if ref not in progress.created)
        if not broken:
            return None
        reason = "failed" if broken[0] in progress.failed else "was not run"
        return InvalidValueException(
            detail=f"bulkId:{broken[0]} refers to an operation that {reason}"
        )

    async def _run(self, caller: Caller, operation: Operation, progress: _Progress) -> Outcome:
        refused = operation.error or self._unresolved(operation, progress)
        if refused is not None:
            return Outcome(operation, refused.status, error=refused)
        try:
            return await self._perform(caller, operation, progress.created)
        except SCIMException as error:
            return Outcome(operation, error.status, error=error)
        except Exception as error:
            if database.unavailable(error):
                # What the operation would have answered alone (scim.app).
                logger.warning("database unavailable", extra={"error": type(error).__name__})
                return Outcome(operation, 503, error=unavailable())
            logger.exception("bulk operation %s failed", operation.index)
            return Outcome(operation, 500, error=internal())

    def _target(self, operation: Operation, created: dict[str, str]) -> tuple[ResourceKind, str]:
        """The resource type an operation's path names, and the rest of the path."""
        path = _substitute(operation.path, created) if operation.references else operation.path
        endpoint, _, rest = path.strip("/").partition("/")
        kind = self.service.registry.kind_for_endpoint(endpoint)
        if kind is None or "/" in rest:
            raise InvalidValueException(detail=f"path {operation.path!r} names no resource type")
        return kind, rest

    def _creation_kind(self, operation: Operation, created: dict[str, str]) -> ResourceKind:
        kind, rest = self._target(operation, created)
        if rest:
            raise InvalidValueException(detail="POST takes the path of a resource type")
        return kind

    async def _perform(
        self, caller: Caller, operation: Operation, created: dict[str, str]
    ) -> Outcome:
        data = _substitute(operation.data, created) if operation.references else operation.data
        if operation.method == "POST":
            kind = self._creation_kind(operation, created)
            written = await self.service.create(caller, kind, data, None)
            return Outcome(operation, 201, written)
        kind, resource_id = self._target(operation, created)
        if not resource_id:
            raise InvalidValueException(
                detail=f"{operation.method} takes the path of one resource, /{kind.endpoint}/<id>"
            )
        if operation.method == "PUT":
            written = await self.service.replace(
                caller, kind, resource_id, data, operation.version, None
            )
            return Outcome(operation, 200, written)
        if operation.method == "PATCH":
            written = await self.service.patch(
                caller, kind, resource_id, data, operation.version, None
            )
            # RFC 7644 §3.5.2: 200 with the resource or 204 without; Bulk returns no bodies.
            return Outcome(operation, 204 if kind.name == "Group" else 200, written)
        await self.service.delete(caller, kind, resource_id, operation.version)
        location = self.service.location(caller, kind, resource_id)
        return Outcome(operation, 204, Written(None, 0, location))


def _new_ids(count: int) -> list[str]:
    """``count`` ids as ``uuid.uuid4`` makes them, from one read of the system's randomness
    instead of one each."""
    randomness = os.urandom(16 * count)
    return [
        str(uuid.UUID(bytes=randomness[start : start + 16], version=4))
        for start in range(0, 16 * count, 16)
    ]


@contextmanager
def _collection_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is validated and written.

    Validating a thousand resources allocates a few hundred thousand objects, most of them
    alive until the batch is written. The collector would walk the whole heap several times
    meanwhile (each full collection costs tens of milliseconds) to find almost no cycles;
    paused, it finds the drafts gone by the time it runs again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _CommitFailed(Exception):
    """The commit of a batch failed: whether its writes took effect is unknown."""


@dataclass
class _Progress:
    """What a request has done so far: the ids its POSTs created by bulkId, the bulkIds
    of operations that failed, and each operation's outcome by index."""

    fail_on_errors: int | None
    created: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    errors: int = 0

    @property
    def stopped(self) -> bool:
        # RFC 7644 §3.7.3: after failOnErrors errors, the remaining operations are not run.
        return self.fail_on_errors is not None and self.errors >= self.fail_on_errors

    def record(self, outcome: Outcome) -> None:
        operation = outcome.operation
        self.outcomes[operation.index] = outcome
        if outcome.error is not None:
            self.errors += 1
            if operation.bulk_id:
                self.failed.add(operation.bulk_id)
        elif operation.method == "POST" and operation.bulk_id and outcome.written:
            self.created[operation.bulk_id] = outcome.written.location.rsplit("/", 1)[-1]

    def unsure_since(self, before: _Progress) -> None:
        """The operations that succeeded since ``before`` may not have been written after
        all: each is reported as failed (500), as one whose own commit failed would be."""
        for index, outcome in list(self.outcomes.items()):
            if index in before.outcomes or outcome.error is not None:
                continue
            self.outcomes[index] = Outcome(outcome.operation, 500, error=internal())
            self.errors += 1
            if outcome.operation.bulk_id:
                self.created.pop(outcome.operation.bulk_id, None)
                self.failed.add(outcome.operation.bulk_id)

    def copy(self) -> _Progress:
        return _Progress(
            self.fail_on_errors,
            dict(self.created),
            set(self.failed),
            dict(self.outcomes),
            self.errors,
        )

    def restore(self, saved: _Progress) -> None:
        self.created, self.failed = saved.created, saved.failed
        self.outcomes, self.errors = saved.outcomes, saved.errors
