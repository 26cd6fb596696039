"""``GET /catalogue``: the e-services and permissions, and what the caller's organisation may
grant, for clients that build permission pickers (the browser client, identity systems)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request, get
from litestar.handlers import HTTPRouteHandler

from scim.api.http import ScimResponse, scim_response
from scim.auth.principal import Principal

if TYPE_CHECKING:
    from extensions.hooks import EServices


def catalogue_router(domain: EServices) -> HTTPRouteHandler:
    @get("/catalogue", name="catalogue")
    async def catalogue(request: Request[Any, Any, Any]) -> ScimResponse:
        """The e-services and what the organisation may grant."""
        principal: Principal = request.state.principal
        tenant = principal.tenant
        body = domain.catalogue.as_json()
        body["organisation"] = {"kind": tenant.kind, "agreements": sorted(tenant.agreements)}
        # What the organisation may grant: the rule that also says what is effective.
        body["grantable"] = list(domain.rules.usable_for(tenant))
        return scim_response(body)

    return catalogue
