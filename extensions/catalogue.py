"""The agency's e-services and their permissions, read from ``extensions/catalogue.toml``.

The catalogue is data the agency changes (a new compensation type, a retired one) without a
release of code, so the file is checked as a whole when it is loaded: a mistake in it fails
there, with a message naming the entry, rather than surfacing later as a wrong grant.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from extensions.organisations import Kind
from scim.settings import Settings

# Ids are stored: service ids in agreements.service_id, a String(64) column.
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ID_MAX = 64

_TOP_KEYS = frozenset({"service"})
_SERVICE_KEYS = frozenset({"id", "name", "description", "offered_to", "group", "permission"})
_GROUP_KEYS = frozenset({"name", "permission"})
_PERMISSION_KEYS = frozenset({"id", "name", "retired", "retired_on"})


class CatalogueError(ValueError):
    """The catalogue file cannot be used; the message names the file, the entry and why."""


@dataclass(frozen=True)
class Permission:
    """Something an administrator can give a user in one e-service.

    A retired permission is kept, not deleted, so that users who hold it stay visible."""

    id: str
    name: str
    retired: bool = False
    retired_on: date | None = None


@dataclass(frozen=True)
class PermissionGroup:
    """A heading the e-service shows its permissions under; ``name`` is None where the
    e-service lists its permissions without headings."""

    name: str | None
    permissions: tuple[Permission, ...]


@dataclass(frozen=True)
class EService:
    """One e-service, offered to one kind of organisation; an organisation also needs an
    agreement for it before its staff may be given any of its permissions."""

    id: str
    name: str
    description: str
    offered_to: Kind
    groups: tuple[PermissionGroup, ...]

    @property
    def permissions(self) -> tuple[Permission, ...]:
        """Every permission, in the order the e-service shows them, retired ones included."""
        return tuple(permission for group in self.groups for permission in group.permissions)

    def permission(self, permission_id: str) -> Permission | None:
        return next((p for p in self.permissions if p.id == permission_id), None)


@dataclass(frozen=True)
class Catalogue:
    """All e-services, in the order the agency lists them."""

    services: tuple[EService, ...]

    def service(self, service_id: str) -> EService | None:
        return next((s for s in self.services if s.id == service_id), None)

    def services_for(self, kind: Kind) -> list[EService]:
        return [service for service in self.services if service.offered_to == kind]

    def permission(self, service_id: str, permission_id: str) -> Permission | None:
        service = self.service(service_id)
        return service.permission(permission_id) if service is not None else None

    def grantable(
        self, service_id: str, permission_id: str, kind: Kind, agreements: AbstractSet[str]
    ) -> str | None:
        """None if an organisation of ``kind`` with agreements for ``agreements`` (service ids)
        may give this permission to its staff; otherwise why not, for an error response.

        What is wrong with the request itself (no such service or permission, retired) is
        reported before what is missing for this organisation (kind, agreement), since only
        the latter can change by signing an agreement."""
        service = self.service(service_id)
        if service is None:
            return f"unknown e-service {service_id!r}"
        permission = service.permission(permission_id)
        if permission is None:
            return f"e-service {service_id!r} has no permission {permission_id!r}"
        if permission.retired:
            since = f" since {permission.retired_on.isoformat()}" if permission.retired_on else ""
            return f"permission {permission_id!r} of e-service {service_id!r} is retired{since}"
        if service.offered_to != kind:
            return (
                f"e-service {service_id!r} is offered to {service.offered_to.value}, "
                f"not to {Kind(kind).value}"
            )
        if service_id not in agreements:
            return f"the organisation has no agreement for e-service {service_id!r}"
        return None

    def as_json(self) -> dict[str, Any]:
        """The catalogue for clients that build a permission picker; a fresh structure each
        call, so that no caller can change the catalogue through it."""
        return {
            "services": [
                {
                    "id": service.id,
                    "name": service.name,
                    "description": service.description,
                    "offeredTo": service.offered_to.value,
                    "groups": [
                        {
                            "name": group.name,
                            "permissions": [
                                {
                                    "id": permission.id,
                                    "name": permission.name,
                                    "retired": permission.retired,
                                    "retiredOn": (
                                        permission.retired_on.isoformat()
                                        if permission.retired_on
                                        else None
                                    ),
                                }
                                for permission in group.permissions
                            ],
                        }
                        for group in service.groups
                    ],
                }
                for service in self.services
            ]
        }


def load(path: Path | None = None) -> Catalogue:
    """The catalogue in ``path``, by default the one shipped in the ``extensions`` package;
    CatalogueError naming the first problem found."""
    source: Path | Traversable = (
        path if path is not None else resources.files("extensions").joinpath("catalogue.toml")
    )
    where = str(source)
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogueError(f"{where}: cannot be read: {error}") from error
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CatalogueError(f"{where}: not valid TOML: {error}") from error
    try:
        return _catalogue(document)
    except CatalogueError as error:
        raise CatalogueError(f"{where}: {error}") from None


def load_configured(settings: Settings) -> Catalogue:
    """The catalogue the server is configured with (``SCIM_CATALOGUE``), else the shipped one."""
    return load(Path(settings.catalogue) if settings.catalogue else None)


def _catalogue(document: dict[str, Any]) -> Catalogue:
    _known_keys(document, _TOP_KEYS, "the file")
    entries = _tables(document, "service", "the file")
    if not entries:
        raise CatalogueError("no [[service]] entries")
    services: list[EService] = []
    for number, entry in enumerate(entries, start=1):
        service = _service(entry, number)
        if any(existing.id == service.id for existing in services):
            raise CatalogueError(f"duplicate service id {service.id!r}")
        services.append(service)
    return Catalogue(tuple(services))


def _service(entry: dict[str, Any], number: int) -> EService:
    where = f"service {number}"
    service_id = _id(entry, where)
    where = f"service {service_id!r}"
    _known_keys(entry, _SERVICE_KEYS, where)
    name = _text(entry, "name", where)
    description = _text(entry, "description", where)
    offered_to = _kind(entry, where)
    if "group" in entry and "permission" in entry:
        raise CatalogueError(
            f"{where}: has both [[service.permission]] and [[service.group]]; "
            "list its permissions either directly or in groups"
        )
    if "group" in entry:
        groups = tuple(
            _group(group, f"{where}, group {index}")
            for index, group in enumerate(_tables(entry, "group", where), start=1)
        )
        if not groups:
            raise CatalogueError(f"{where}: has no groups")
    else:
        permissions = _permissions(entry, where)
        groups = (PermissionGroup(None, permissions),)
    _unique_group_names(groups, where)
    _unique_permission_ids((p for group in groups for p in group.permissions), where)
    return EService(service_id, name, description, offered_to, groups)


def _group(entry: dict[str, Any], where: str) -> PermissionGroup:
    _known_keys(entry, _GROUP_KEYS, where)
    name = _text(entry, "name", where)
    return PermissionGroup(name, _permissions(entry, f"{where} {name!r}"))


def _permissions(entry: dict[str, Any], where: str) -> tuple[Permission, ...]:
    entries = _tables(entry, "permission", where)
    if not entries:
        raise CatalogueError(f"{where}: has no permissions")
    return tuple(_permission(item, where, index) for index, item in enumerate(entries, start=1))


def _permission(entry: dict[str, Any], within: str, number: int) -> Permission:
    permission_id = _id(entry, f"{within}, permission {number}")
    where = f"{within}, permission {permission_id!r}"
    _known_keys(entry, _PERMISSION_KEYS, where)
    name = _text(entry, "name", where)
    retired = entry.get("retired", False)
    if not isinstance(retired, bool):
        raise CatalogueError(f"{where}: retired must be true or false, not {retired!r}")
    retired_on = entry.get("retired_on")
    if retired_on is not None:
        if isinstance(retired_on, datetime) or not isinstance(retired_on, date):
            raise CatalogueError(
                f"{where}: retired_on must be a TOML date such as 2026-01-01, not {retired_on!r}"
            )
        if not retired:
            raise CatalogueError(f"{where}: retired_on is set but retired is not true")
    return Permission(permission_id, name, retired, retired_on)


def _unique_group_names(groups: tuple[PermissionGroup, ...], where: str) -> None:
    seen: set[str | None] = set()
    for group in groups:
        if group.name in seen:
            raise CatalogueError(f"{where}: duplicate group name {group.name!r}")
        seen.add(group.name)


def _unique_permission_ids(permissions: Iterable[Permission], where: str) -> None:
    seen: set[str] = set()
    for permission in permissions:
        if permission.id in seen:
            raise CatalogueError(f"{where}: duplicate permission id {permission.id!r}")
        seen.add(permission.id)


def _known_keys(entry: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise CatalogueError(
            f"{where}: unknown key {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _tables(entry: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CatalogueError(f"{where}: {key} must be an array of tables, [[...{key}]]")
    return value


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if value is None:
        raise CatalogueError(f"{where}: {key} is missing")
    if not isinstance(value, str):
        raise CatalogueError(f"{where}: {key} must be a string, not {value!r}")
    if not value.strip():
        raise CatalogueError(f"{where}: {key} must not be empty")
    return value.strip()


def _id(entry: dict[str, Any], where: str) -> str:
    value = _text(entry, "id", where)
    if len(value) > _ID_MAX or not _ID.fullmatch(value) or value != entry["id"]:
        raise CatalogueError(
            f"{where}: malformed id {entry['id']!r}: lower-case ASCII letters and digits in "
            f"words joined by single hyphens, at most {_ID_MAX} characters"
        )
    return value


def _kind(entry: dict[str, Any], where: str) -> Kind:
    value = entry.get("offered_to")
    if value is None:
        raise CatalogueError(f"{where}: offered_to is missing")
    try:
        return Kind(value)
    except ValueError:
        choices = ", ".join(kind.value for kind in Kind)
        raise CatalogueError(
            f"{where}: unknown kind {value!r} in offered_to; one of {choices}"
        ) from None
