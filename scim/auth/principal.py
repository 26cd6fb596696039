"""Who a request acts as, and for which organisation."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from scim.hooks import Tenant


class Role(StrEnum):
    administrator = "administrator"  # a person managing the organisation's users
    system = "system"  # an identity system provisioning over SCIM
    user = "user"  # a person with e-service permissions: may read only their own /Me


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: Tenant  # the organisation, with what the operator registered of it
    role: Role
    actor: str  # the id a person's certificate carries (serialNumber), "client:<id>" of a system
    name: str
    user_id: str | None = None  # the User resource of a person with the user role
