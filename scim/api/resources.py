"""One controller for every resource type (RFC 7644 §3.2-3.6) and the root search."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post, put, route
from litestar.params import FromPath
from scim2_models import ForbiddenException, NotFoundException

from scim.api.http import ScimResponse, base_url, header, listed, read_json, scim_response
from scim.auth.principal import Principal, Role
from scim.bulk import BulkService
from scim.registry import ResourceKind
from scim.service import Caller, ResourceService, Written, etag

AnyRequest = Request[Any, Any, Any]

# What /Me shows by default: who the person is and what they may use now, with what the
# domain adds (``scim.hooks.Domain.me_attributes``).
ME_ATTRIBUTES = ("userName", "name", "displayName", "emails", "active")
ME_ATTRIBUTES_LAST = ("entitlements", "groups", "meta")


def _service(request: AnyRequest) -> ResourceService:
    service: ResourceService = request.app.state.service
    return service


async def authenticate(request: AnyRequest) -> None:
    """Before every resource request: who calls, for which organisation (401 if unknown).
    A person with the user role may only read their own resource at /Me (403 elsewhere)."""
    principal: Principal = await request.app.state.authenticator.authenticate(request)
    request.state.principal = principal
    request.app.state.rate_limiter.admit(principal)
    me = request.app.state.settings.base_path + "/Me"
    if principal.role == Role.user and request.scope["path"] != me:
        raise ForbiddenException(detail="A user may only read their own resource, at /Me")


def _caller(request: AnyRequest) -> Caller:
    principal: Principal = request.state.principal
    return Caller(principal.tenant, base_url(request), principal.actor)


def _kind(request: AnyRequest, endpoint: str) -> ResourceKind:
    kind = _service(request).registry.kind_for_endpoint(endpoint)
    if kind is None:
        raise NotFoundException(detail=f"No resource type is served at /{endpoint}")
    return kind


def _plan(request: AnyRequest, kind: ResourceKind) -> Any:
    return _service(request).plan(
        kind,
        listed(request.query_params.get("attributes")),
        listed(request.query_params.get("excludedAttributes")),
    )


def _written(written: Written, status_code: int) -> ScimResponse:
    headers = {"ETag": etag(written.version)}
    if status_code == 201:
        headers["Location"] = written.location
    if written.document is None:
        return scim_response(None, 204, headers)
    return scim_response(written.document, status_code, headers)


def _search_payload(request: AnyRequest) -> dict[str, Any]:
    """RFC 7644 §3.4.2: the query parameters of a GET, as a SearchRequest would carry them."""
    payload: dict[str, Any] = {}
    params = request.query_params
    for name in ("filter", "sortBy", "sortOrder", "startIndex", "count", "cursor"):
        if name in params:
            payload[name] = params.get(name)
    for name in ("attributes", "excludedAttributes"):
        if (values := listed(params.get(name))) is not None:
            payload[name] = values
    return payload


class ResourceController(Controller):
    """``/Users``, ``/Groups`` and any other registered type, by its endpoint."""

    path = "/"

    @get("/{endpoint:str}", name="list")
    async def list_resources(self, request: AnyRequest, endpoint: FromPath[str]) -> ScimResponse:
        kind = _kind(request, endpoint)
        service = _service(request)
        search = service.parse_search([kind], _search_payload(request))
        return scim_response(await service.search(_caller(request), [kind], search))

    @post("/{endpoint:str}/.search", name="search", status_code=200)
    async def search(self, request: AnyRequest, endpoint: FromPath[str]) -> ScimResponse:
        kind = _kind(request, endpoint)
        return await _search(request, [kind])

    @get("/", name="root-query")
    async def root_query(self, request: AnyRequest) -> ScimResponse:
        """RFC 7644 §3.4.2.1: a query at the root spans every resource type."""
        service = _service(request)
        kinds = list(service.registry.kinds.values())
        search = service.parse_search(kinds, _search_payload(request))
        return scim_response(await service.search(_caller(request), kinds, search))

    @get("/Me", name="me")
    async def me(self, request: AnyRequest) -> ScimResponse:
        """RFC 7644 §3.11: the User resource of the person signed in, with what they may use
        now (effective permissions), so that an e-service can ask."""
        principal: Principal = request.state.principal
        if principal.user_id is None:
            raise NotFoundException(detail=f"{principal.name} is not a User of the organisation")
        service = _service(request)
        kind = service.registry.by_name["User"]
        params = request.query_params
        attributes = listed(params.get("attributes"))
        if attributes is None and "excludedAttributes" not in params:
            attributes = [*ME_ATTRIBUTES, *service.domain.me_attributes, *ME_ATTRIBUTES_LAST]
        plan = service.plan(kind, attributes, listed(params.get("excludedAttributes")))
        document, version = await service.get(_caller(request), kind, principal.user_id, plan)
        headers = {"ETag": etag(version), "Content-Location": document["meta"]["location"]}
        return scim_response(document, 200, headers)

    @route("/Me", http_method=["POST", "PUT", "PATCH", "DELETE"], name="me-write")
    async def me_write(self, request: AnyRequest) -> ScimResponse:
        principal: Principal = request.state.principal
        if principal.role == Role.user:
            raise ForbiddenException(detail="A user may read their own resource, not change it")
        raise NotFoundException(detail=f"{principal.name} is not a User of the organisation")

    @post("/Bulk", name="bulk", status_code=200)
    async def bulk(self, request: AnyRequest) -> ScimResponse:
        """RFC 7644 §3.7: each operation in its own transaction, in the caller's organisation."""
        body = await read_json(request, request.app.state.settings.max_payload_size)
        bulk: BulkService = request.app.state.bulk
        return scim_response(await bulk.execute(_caller(request), body))

    @post("/.search", name="root-search", status_code=200)
    async def root_search(self, request: AnyRequest) -> ScimResponse:
        return await _search(request, list(_service(request).registry.kinds.values()))

    @post("/{endpoint:str}", name="create")
    async def create(self, request: AnyRequest, endpoint: FromPath[str]) -> ScimResponse:
        kind = _kind(request, endpoint)
        body = await read_json(request, request.app.state.settings.max_payload_size)
        written = await _service(request).create(_caller(request), kind, body, _plan(request, kind))
        return _written(written, 201)

    @get("/{endpoint:str}/{resource_id:str}", name="read")
    async def read(
        self, request: AnyRequest, endpoint: FromPath[str], resource_id: FromPath[str]
    ) -> ScimResponse:
        kind = _kind(request, endpoint)
        document, version = await _service(request).get(
            _caller(request), kind, resource_id, _plan(request, kind)
        )
        tag = etag(version)
        if_none_match = header(request, b"if-none-match")
        if if_none_match and (if_none_match.strip() == "*" or tag in _tags(if_none_match)):
            return scim_response(None, 304, {"ETag": tag})
        return scim_response(document, 200, {"ETag": tag})

    @put("/{endpoint:str}/{resource_id:str}", name="replace")
    async def replace(
        self, request: AnyRequest, endpoint: FromPath[str], resource_id: FromPath[str]
    ) -> ScimResponse:
        kind = _kind(request, endpoint)
        body = await read_json(request, request.app.state.settings.max_payload_size)
        written = await _service(request).replace(
            _caller(request),
            kind,
            resource_id,
            body,
            header(request, b"if-match"),
            _plan(request, kind),
        )
        return _written(written, 200)

    @patch("/{endpoint:str}/{resource_id:str}", name="patch")
    async def patch(
        self, request: AnyRequest, endpoint: FromPath[str], resource_id: FromPath[str]
    ) -> ScimResponse:
        kind = _kind(request, endpoint)
        body = await read_json(request, request.app.state.settings.max_payload_size)
        params = request.query_params
        # A Group PATCH answers 204 unless a representation is asked for, so that
        # changing one member never serialises a large group.
        wants_body = (
            kind.name != "Group" or "attributes" in params or "excludedAttributes" in params
        )
        written = await _service(request).patch(
            _caller(request),
            kind,
            resource_id,
            body,
            header(request, b"if-match"),
            _plan(request, kind) if wants_body else None,
        )
        return _written(written, 200)

    @delete("/{endpoint:str}/{resource_id:str}", name="delete", status_code=200)
    async def delete(
        self, request: AnyRequest, endpoint: FromPath[str], resource_id: FromPath[str]
    ) -> ScimResponse:
        kind = _kind(request, endpoint)
        await _service(request).delete(
            _caller(request), kind, resource_id, header(request, b"if-match")
        )
        return scim_response(None, 204)


async def _search(request: AnyRequest, kinds: list[ResourceKind]) -> ScimResponse:
    service = _service(request)
    # A filter is compiled, not stored: U+0000 in it is an invalidFilter (scim.storage.filters).
    body = await read_json(request, request.app.state.settings.max_payload_size, stored=False)
    body.pop("schemas", None)
    search = service.parse_search(kinds, body)
    return scim_response(await service.search(_caller(request), kinds, search))


def _tags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",")}
