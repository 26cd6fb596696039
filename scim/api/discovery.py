"""``/ServiceProviderConfig``, ``/ResourceTypes`` and ``/Schemas`` (RFC 7644 §4)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath
from scim2_models import Context, ForbiddenException, NotFoundException

from scim.api.http import ScimResponse, base_url, scim_response
from scim.events.delivery import EVENT_URIS
from scim.registry import Registry
from scim.storage import events as stored_events

AnyRequest = Request[Any, Any, Any]
_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def _base(request: AnyRequest) -> str:
    return base_url(request)


def _refuse_filter(request: AnyRequest) -> None:
    """RFC 7644 §4: a filter here SHOULD get 403, lest a client take every item for a match."""
    if "filter" in request.query_params:
        raise ForbiddenException(detail="Discovery endpoints cannot be filtered")


def _dump(model: Any) -> dict[str, Any]:
    document: dict[str, Any] = model.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    return document


def _with_meta(document: dict[str, Any], resource_type: str, location: str) -> dict[str, Any]:
    return {**document, "meta": {"resourceType": resource_type, "location": location}}


def schemas(registry: Registry, base: str) -> list[dict[str, Any]]:
    """Every schema, as the domain completes it (``scim.hooks.Domain.describe``)."""
    published = []
    for schema in registry.provider.schemas:
        document = _dump(schema)
        registry.domain.describe(document)
        published.append(_with_meta(document, "Schema", f"{base}/Schemas/{schema.id}"))
    return published


def resource_types(registry: Registry, base: str) -> list[dict[str, Any]]:
    return [
        _with_meta(_dump(resource_type), "ResourceType", f"{base}/ResourceTypes/{resource_type.id}")
        for resource_type in registry.provider.resource_types
    ]


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [_LIST],
        "totalResults": len(items),
        "itemsPerPage": len(items),
        "startIndex": 1,
        "Resources": items,
    }


class DiscoveryController(Controller):
    path = "/"

    @get("/ServiceProviderConfig", name="service-provider-config")
    async def service_provider_config(self, request: AnyRequest) -> ScimResponse:
        _refuse_filter(request)
        registry: Registry = request.app.state.registry
        config = _dump(registry.provider.config)
        async with request.app.state.service.read_engine.connect() as connection:
            configured = await stored_events.any_receiver(connection)
        if configured:
            # RFC 9967 §4: events are generated and delivered (RFC 8935 push, RFC 8936 poll);
            # no request is answered asynchronously. Absent, the attribute says the server
            # is not configured for security events: it has no receiver.
            config["securityEvents"] = {
                "asyncRequest": "none",
                "eventUris": list(EVENT_URIS.values()),
            }
        location = f"{_base(request)}/ServiceProviderConfig"
        return scim_response(_with_meta(config, "ServiceProviderConfig", location))

    @get("/ResourceTypes", name="resource-types")
    async def resource_types(self, request: AnyRequest) -> ScimResponse:
        _refuse_filter(request)
        return scim_response(_listing(resource_types(request.app.state.registry, _base(request))))

    @get("/ResourceTypes/{name:str}", name="resource-type")
    async def resource_type(self, request: AnyRequest, name: FromPath[str]) -> ScimResponse:
        for item in resource_types(request.app.state.registry, _base(request)):
            if item["id"].lower() == name.lower():
                return scim_response(item)
        raise NotFoundException(detail=f"No resource type {name!r}")

    @get("/Schemas", name="schemas")
    async def schemas(self, request: AnyRequest) -> ScimResponse:
        _refuse_filter(request)
        return scim_response(_listing(schemas(request.app.state.registry, _base(request))))

    @get("/Schemas/{schema_id:str}", name="schema")
    async def schema(self, request: AnyRequest, schema_id: FromPath[str]) -> ScimResponse:
        for item in schemas(request.app.state.registry, _base(request)):
            if item["id"].lower() == schema_id.lower():
                return scim_response(item)
        raise NotFoundException(detail=f"No schema {schema_id!r}")
