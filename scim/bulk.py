"""Bulk operations (RFC 7644 §3.7): many writes in one request, each its own transaction.

Operations may refer to resources created earlier *or later* in the same request as
``bulkId:<id>`` (§3.7.2); they run in an order that creates each such resource before
it is referred to, and references that cannot be resolved fail on their own.
"""

from __future__ import annotations

import heapq
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from scim2_models import (
    InvalidSyntaxException,
    InvalidValueException,
    PayloadTooLargeException,
    SCIMException,
)

from scim.errors import ERROR_SCHEMA
from scim.service import Caller, ResourceService, Written

logger = logging.getLogger("scim.bulk")

REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_REFERENCE = re.compile(r"bulkId:([^\s\"/]+)")
_METHODS = ("POST", "PUT", "PATCH", "DELETE")


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
            body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
            if self.error.scim_type:
                body["scimType"] = self.error.scim_type
            body["detail"] = self.error.detail
            entry["response"] = body
        return entry


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
        operation.references = set(_references(operation.data)) | set(_references(operation.path))
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
        operations, fail_on_errors = self._parse(body)
        created: dict[str, str] = {}
        failed: set[str] = set()
        outcomes: dict[int, Outcome] = {}
        errors = 0
        for operation in self._order(operations):
            if fail_on_errors is not None and errors >= fail_on_errors:
                break
            outcome = await self._run(caller, operation, created, failed)
            outcomes[operation.index] = outcome
            if outcome.error is not None:
                errors += 1
                if operation.bulk_id:
                    failed.add(operation.bulk_id)
            elif operation.method == "POST" and operation.bulk_id and outcome.written:
                created[operation.bulk_id] = outcome.written.location.rsplit("/", 1)[-1]
        return {
            "schemas": [RESPONSE_SCHEMA],
            "Operations": [outcomes[index].render() for index in sorted(outcomes)],
        }

    async def _run(
        self, caller: Caller, operation: Operation, created: dict[str, str], failed: set[str]
    ) -> Outcome:
        if operation.error is not None:
            return Outcome(operation, operation.error.status, error=operation.error)
        broken = sorted(ref for ref in operation.references if ref not in created)
        if broken:
            reason = "failed" if broken[0] in failed else "was not run"
            error = InvalidValueException(
                detail=f"bulkId:{broken[0]} refers to an operation that {reason}"
            )
            return Outcome(operation, error.status, error=error)
        try:
            return await self._perform(caller, operation, created)
        except SCIMException as error:
            return Outcome(operation, error.status, error=error)
        except Exception:
            logger.exception("bulk operation %s failed", operation.index)
            internal = SCIMException(detail="Internal server error")
            internal.status = 500
            return Outcome(operation, 500, error=internal)

    async def _perform(
        self, caller: Caller, operation: Operation, created: dict[str, str]
    ) -> Outcome:
        path = _substitute(operation.path, created)
        data = _substitute(operation.data, created)
        segments = path.strip("/").split("/")
        kind = self.service.registry.kind_for_endpoint(segments[0])
        if kind is None or len(segments) > 2:
            raise InvalidValueException(detail=f"path {operation.path!r} names no resource type")
        if operation.method == "POST":
            if len(segments) != 1:
                raise InvalidValueException(detail="POST takes the path of a resource type")
            written = await self.service.create(caller, kind, data, None)
            return Outcome(operation, 201, written)
        if len(segments) != 2:
            raise InvalidValueException(
                detail=f"{operation.method} takes the path of one resource, /{kind.endpoint}/<id>"
            )
        resource_id = segments[1]
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
