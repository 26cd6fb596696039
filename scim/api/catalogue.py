"""``GET /catalogue``: the e-services and permissions, and what the caller's organisation may
grant, for clients that build permission pickers (the browser client, identity systems)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from scim.api.http import scim_response
from scim.auth.principal import Principal
from scim.catalogue import Catalogue
from scim.organisations import Kind
from scim.service import ResourceService
from scim.storage.repository import Repository


@get("/catalogue", name="catalogue")
async def catalogue(request: Request[Any, Any, Any]) -> Response[bytes]:
    principal: Principal = request.state.principal
    service: ResourceService = request.app.state.service
    known: Catalogue = service.rules.catalogue
    async with service.read_engine.connect() as connection:
        kind_value, agreements = await Repository(connection, principal.tenant_id).organisation()
    kind = Kind(kind_value)
    grantable = [
        f"{offered.id}:{permission.id}"
        for offered in known.services_for(kind)
        for permission in offered.permissions
        if known.grantable(offered.id, permission.id, kind, agreements) is None
    ]
    body = known.as_json()
    body["organisation"] = {"kind": kind.value, "agreements": sorted(agreements)}
    body["grantable"] = grantable
    return scim_response(body)
