"""The rules of the e-service extension, applied to a document before it is stored.

HSA-ids are checked and written in upper case. A permission may be granted only if the
catalogue lists it, it is not retired, it is offered to the organisation's kind and the
organisation has an agreement for its e-service. What a user or group already holds is
kept as it is, even once it could no longer be granted: nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import InvalidValueException

from scim.catalogue import Catalogue
from scim.extension import GROUP_EXTENSION, USER_EXTENSION
from scim.organisations import Kind, normalise_hsa_id

EXTENSIONS = {"User": USER_EXTENSION, "Group": GROUP_EXTENSION}


@dataclass(frozen=True)
class Organisation:
    """What the rules need to know of the organisation a write is for."""

    kind: Kind
    agreements: frozenset[str]


def hsa_id_of(document: dict[str, Any]) -> str | None:
    value = (document.get(USER_EXTENSION) or {}).get("hsaId")
    return value if isinstance(value, str) else None


def granted(document: dict[str, Any] | None, kind_name: str) -> set[str]:
    """The permission values a stored document holds."""
    if not document:
        return set()
    extension = document.get(EXTENSIONS[kind_name]) or {}
    return {
        item["value"]
        for item in extension.get("permissions") or []
        if isinstance(item, dict) and isinstance(item.get("value"), str)
    }


class Rules:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def prepare(
        self,
        kind_name: str,
        document: dict[str, Any],
        previous: dict[str, Any] | None,
        organisation: Organisation,
    ) -> None:
        """Check the extension of ``document`` and complete it in place (400 invalidValue)."""
        urn = EXTENSIONS.get(kind_name)
        if urn is None:
            return
        extension = document.get(urn)
        if not isinstance(extension, dict):
            return
        # Derived on every read, never stored.
        extension.pop("effectivePermissions", None)
        if kind_name == "User" and isinstance(extension.get("hsaId"), str):
            try:
                extension["hsaId"] = normalise_hsa_id(extension["hsaId"])
            except ValueError as error:
                raise InvalidValueException(detail=f"hsaId: {error}") from error
        held = granted(previous, kind_name)
        permissions = extension.get("permissions")
        if permissions is None:
            return
        completed: dict[str, dict[str, Any]] = {}
        for item in permissions:
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str):
                raise InvalidValueException(detail="permissions: each value is a string")
            completed[value] = self._complete(value, value in held, organisation)
        if completed:
            extension["permissions"] = list(completed.values())
        else:
            extension.pop("permissions")

    def effective(
        self,
        own: list[dict[str, Any]],
        inherited: list[tuple[str, list[dict[str, Any]]]],
        organisation: Organisation,
    ) -> list[dict[str, Any]]:
        """What a user may use now: its own permissions, then its groups' (source: the group
        id), each once, and only those still grantable in the organisation: a permission
        kept after its agreement ended or it was retired is held, not effective."""
        effective: dict[str, dict[str, Any]] = {}
        sources = [("direct", own), *inherited]
        for source, items in sources:
            for item in items:
                value = item.get("value") if isinstance(item, dict) else None
                if not isinstance(value, str) or value in effective:
                    continue
                service_id, _, permission_id = value.partition(":")
                if self.catalogue.grantable(
                    service_id, permission_id, organisation.kind, organisation.agreements
                ):
                    continue
                permission = self.catalogue.permission(service_id, permission_id)
                effective[value] = {
                    "value": value,
                    "service": service_id,
                    "permission": permission_id,
                    "display": permission.name if permission else None,
                    "source": source,
                }
        return list(effective.values())

    def _complete(self, value: str, held: bool, organisation: Organisation) -> dict[str, Any]:
        service_id, separator, permission_id = value.partition(":")
        if not separator or not service_id or not permission_id:
            raise InvalidValueException(
                detail=f"permissions: {value!r} is not '<e-service id>:<permission id>'"
            )
        if not held:
            reason = self.catalogue.grantable(
                service_id, permission_id, organisation.kind, organisation.agreements
            )
            if reason is not None:
                raise InvalidValueException(detail=f"permissions: {value!r}: {reason}")
        permission = self.catalogue.permission(service_id, permission_id)
        item: dict[str, Any] = {
            "value": value,
            "service": service_id,
            "permission": permission_id,
        }
        if permission is not None:
            item["display"] = permission.name
        return item
