"""The SCIM extension for HSA-ids and e-service permissions (its own URNs, RFC 7643 §3.3).

A permission is written as one string, "<e-service id>:<permission id>" in "value", the
way identity providers already handle "roles" and "entitlements"; the server fills in
the read-only "service", "permission" and "display" from the catalogue so that clients
can filter on them and show them.
"""

from __future__ import annotations

from typing import Annotated

from scim2_models import (
    URN,
    CaseExact,
    ComplexAttribute,
    Entitlement,
    Extension,
    Mutability,
    Required,
    Returned,
    Uniqueness,
)

from scim.models import User as CoreUser

# In the form Microsoft Entra ID maps custom attributes to:
# urn:ietf:params:scim:schemas:extension:<name>:2.0:User:<attribute>.
USER_EXTENSION = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:User"
GROUP_EXTENSION = "urn:ietf:params:scim:schemas:extension:behorigheter:2.0:Group"


class Permission(ComplexAttribute):
    """One permission in one e-service, granted to a user or a group."""

    value: Annotated[str | None, Required.true, CaseExact.true] = None
    """"<e-service id>:<permission id>", as listed in the catalogue."""

    # Filled in by the server; returned when asked for by name (attributes=...permissions.display),
    # so that by default a client reads back exactly what it wrote.
    service: Annotated[str | None, Mutability.read_only, CaseExact.true, Returned.request] = None
    """The e-service id."""

    permission: Annotated[str | None, Mutability.read_only, CaseExact.true, Returned.request] = None
    """The permission id within the e-service."""

    display: Annotated[str | None, Mutability.read_only, Returned.request] = None
    """The permission's Swedish name in the catalogue."""


class EffectivePermission(Permission):
    """A permission a user may use now, and where it comes from."""

    source: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    """"direct", or the id of the group that gives it."""


class EServiceUser(Extension):
    """HSA-id and permissions of a person in an organisation's e-services."""

    __schema__ = URN(USER_EXTENSION)

    hsa_id: Annotated[str | None, Required.true, Uniqueness.server] = None
    """The person's HSA-id: "SE", ten digits, "-", letters or digits; unique in the
    organisation."""

    permissions: list[Permission] | None = None
    """The permissions granted to the user directly."""

    # Returned when asked for (attributes=...:effectivePermissions), so that by default a
    # client reads back exactly the extension it wrote; entitlements mirror it by default.
    effective_permissions: Annotated[
        list[EffectivePermission] | None, Mutability.read_only, Returned.request
    ] = None
    """What the user may use now: its own permissions and those of its groups, for
    e-services the organisation has an agreement for."""


class EServiceGroup(Extension):
    """Permissions every member of a group has."""

    __schema__ = URN(GROUP_EXTENSION)

    permissions: list[Permission] | None = None


class User(CoreUser):
    """The core User, with "entitlements" read-only: it mirrors the effective permissions
    ("value" as above, "type" the e-service) for clients that only know the core schema."""

    entitlements: Annotated[list[Entitlement] | None, Mutability.read_only] = None
