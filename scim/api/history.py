"""``GET /history/{Users|Groups}/{id}``: who changed a resource, what and when, from the
audit log, for the administrators of its organisation (the browser client's "Historik")."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from scim2_models import ForbiddenException, NotFoundException

from scim.api.http import ScimResponse, scim_response
from scim.auth.principal import Principal, Role
from scim.storage import audit

# The newest records a view shows; older ones are in ``scim audit export``.
LIMIT = 200


@get("/history/{endpoint:str}/{resource_id:str}", name="history")
async def history(
    request: Request[Any, Any, Any], endpoint: FromPath[str], resource_id: FromPath[str]
) -> ScimResponse:
    principal: Principal = request.state.principal
    if principal.role != Role.administrator:
        # Identity systems keep their own logs; a user sees only their own /Me.
        raise ForbiddenException(detail="Only the organisation's administrators read history")
    kind = request.app.state.registry.kind_for_endpoint(endpoint)
    if kind is None:
        raise NotFoundException(detail=f"No resource type is served at /{endpoint}")
    # A read: in autocommit, which on SQLite takes no write lock (scim.storage.database).
    async with request.app.state.service.read_engine.connect() as connection:
        records = await audit.history(
            connection, principal.tenant.id, kind.name, resource_id, LIMIT
        )
    return scim_response({"totalResults": len(records), "Resources": records})
