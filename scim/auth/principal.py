"""Who a request acts as, and for which organisation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    administrator = "administrator"  # a person managing the organisation's users
    system = "system"  # an identity system provisioning over SCIM
    user = "user"  # a person with e-service permissions: may read only their own /Me


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: int
    role: Role
    actor: str  # HSA-id of a person, "client:<id>" of a system
    name: str
    kind: str = ""  # of the organisation: "kommun" or "region"
    agreements: frozenset[str] = frozenset()  # e-service ids it has agreements for
    user_id: str | None = None  # the User resource of a person with the user role
