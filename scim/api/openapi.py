"""``GET /openapi.json``: the HTTP API as an OpenAPI 3.1 document, for client generators and
API fuzzers (the test suite runs schemathesis against it).

The resource schemas are the JSON Schemas of the same scim2-models classes that validate
requests, so the document cannot drift from what the server accepts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from scim.events.signing import JWKS_PATH
from scim.registry import Registry
from scim.settings import Settings

SCIM_JSON = "application/scim+json"
_LIST_PARAMETERS = [
    ("filter", "string", "RFC 7644 §3.4.2.2 filter"),
    ("sortBy", "string", "attribute to sort by"),
    ("sortOrder", "string", "ascending or descending"),
    ("startIndex", "integer", "1-based index of the first result"),
    ("count", "integer", "results per page"),
    ("cursor", "string", "RFC 9865 cursor"),
    ("attributes", "string", "comma-separated attributes to return"),
    ("excludedAttributes", "string", "comma-separated attributes to leave out"),
]
_PROJECTION = _LIST_PARAMETERS[-2:]


def _lift_definitions(schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema with its ``$defs`` moved into the components."""
    for name, definition in schema.pop("$defs", {}).items():
        into[name] = definition
    return schema


def _refs(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                item.replace("#/$defs/", "#/components/schemas/")
                if key == "$ref" and isinstance(item, str)
                else _refs(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_refs(item) for item in value]
    return value


def _query(parameters: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": about,
            "schema": {"type": kind},
        }
        for name, kind, about in parameters
    ]


def _body(schema: str) -> dict[str, Any]:
    reference = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "required": True,
        "content": {SCIM_JSON: {"schema": reference}, "application/json": {"schema": reference}},
    }


def _answers(success: dict[int, str | None]) -> dict[str, Any]:
    """Responses: the given successes, and RFC 7644 §3.12 errors for everything else."""
    responses: dict[str, Any] = {}
    for status, schema in success.items():
        if schema is None:
            responses[str(status)] = {"description": "No content"}
        else:
            reference = {"$ref": f"#/components/schemas/{schema}"}
            responses[str(status)] = {
                "description": "Success",
                "content": {SCIM_JSON: {"schema": reference}},
            }
    error = {"$ref": "#/components/schemas/Error"}
    responses["default"] = {
        "description": "A SCIM error",
        "content": {SCIM_JSON: {"schema": error}},
    }
    return responses


def _operation(summary: str, responses: dict[int, str | None], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": _answers(responses), **extra}


_MESSAGES: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["schemas", "status"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string"},
            "scimType": {"type": "string"},
            "detail": {"type": "string"},
        },
    },
    "PatchOp": {
        "type": "object",
        "required": ["schemas", "Operations"],
        "properties": {
            "schemas": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                },
            },
            "Operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["op"],
                    "properties": {
                        "op": {"type": "string", "enum": ["add", "replace", "remove"]},
                        "path": {"type": "string"},
                        "value": {},
                    },
                },
            },
        },
    },
    "SearchRequest": {
        "type": "object",
        "properties": {
            "schemas": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                },
            },
            "filter": {"type": "string"},
            "sortBy": {"type": "string"},
            "sortOrder": {"type": "string", "enum": ["ascending", "descending"]},
            "startIndex": {"type": "integer"},
            "count": {"type": "integer"},
            "attributes": {"type": "array", "items": {"type": "string"}},
            "excludedAttributes": {"type": "array", "items": {"type": "string"}},
        },
    },
    "BulkRequest": {
        "type": "object",
        "required": ["schemas", "Operations"],
        "properties": {
            "schemas": {
                "type": "array",
                "items": {
                    "type": "string",
                    "enum": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                },
            },
            "failOnErrors": {"type": "integer"},
            "Operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["method"],
                    "properties": {
                        "method": {"type": "string", "enum": ["POST", "PUT", "PATCH", "DELETE"]},
                        "bulkId": {"type": "string"},
                        "version": {"type": "string"},
                        "path": {"type": "string"},
                        "data": {},
                    },
                },
            },
        },
    },
    "ListResponse": {
        "type": "object",
        "required": ["schemas", "totalResults"],
        "properties": {
            "schemas": {"type": "array", "items": {"type": "string"}},
            "totalResults": {"type": "integer"},
            "itemsPerPage": {"type": "integer"},
            "startIndex": {"type": "integer"},
            "nextCursor": {"type": "string"},
            "previousCursor": {"type": "string"},
            "Resources": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Document": {"type": "object"},
}


def _plain_json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_SET_ERROR = {
    "type": "object",
    "required": ["err", "description"],
    "properties": {"err": {"type": "string"}, "description": {"type": "string"}},
}
# Security events' receivers (``scim.api.events``): not SCIM, so plain JSON, and RFC 8935
# §2.3 error bodies.
_EVENT_PATHS: dict[str, Any] = {
    JWKS_PATH: {
        "get": {
            "summary": "The public keys that verify security event tokens (RFC 7517 JWKS)",
            "security": [],
            "responses": {
                "200": {
                    "description": "The key set",
                    "content": {
                        "application/jwk-set+json": {
                            "schema": {
                                "type": "object",
                                "required": ["keys"],
                                "properties": {"keys": {"type": "array"}},
                            }
                        }
                    },
                }
            },
        }
    },
    "/events/poll": {
        "post": {
            "summary": "Acknowledge and fetch security event tokens (RFC 8936), as a receiver",
            "security": [{"bearer": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "ack": {"type": "array", "items": {"type": "string"}},
                                "setErrs": {
                                    "type": "object",
                                    "additionalProperties": _SET_ERROR,
                                },
                                "maxEvents": {"type": "integer", "minimum": 0, "maximum": 1000},
                                "returnImmediately": {"type": "boolean"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _plain_json(
                    {
                        "type": "object",
                        "required": ["sets", "moreAvailable"],
                        "properties": {
                            "sets": {"type": "object", "additionalProperties": {"type": "string"}},
                            "moreAvailable": {"type": "boolean"},
                        },
                    },
                    "The SETs due, by jti",
                ),
                "400": _plain_json(_SET_ERROR, "Not a poll request"),
                "401": _plain_json(_SET_ERROR, "Not a receiver's token"),
                "413": _plain_json(_SET_ERROR, "Too large"),
            },
        }
    },
}


@cache
def document(settings: Settings, registry: Registry) -> bytes:
    base_path = settings.base_path
    components: dict[str, Any] = dict(_MESSAGES)
    # The operations a PATCH or a Bulk request may hold (413 tooMany above).
    for message, limit in (
        ("PatchOp", settings.max_patch_operations),
        ("BulkRequest", settings.max_bulk_operations),
    ):
        schema = components[message]
        operations = {**schema["properties"]["Operations"], "maxItems": limit}
        components[message] = {
            **schema,
            "properties": {**schema["properties"], "Operations": operations},
        }
    paths: dict[str, Any] = {}
    resource_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    for kind in registry.kinds.values():
        name = kind.name
        schema = kind.model.model_json_schema(by_alias=True)
        components[name] = _lift_definitions(schema, components)
        collection = f"{base_path}/{kind.endpoint}"
        paths[collection] = {
            "get": _operation(
                f"List or filter {name}s",
                {200: "ListResponse"},
                parameters=_query(_LIST_PARAMETERS),
            ),
            "post": _operation(
                f"Create a {name}",
                {201: name},
                parameters=_query(_PROJECTION),
                requestBody=_body(name),
            ),
        }
        paths[f"{collection}/{{id}}"] = {
            "parameters": [resource_id],
            "get": _operation(
                f"Read a {name}", {200: name, 304: None}, parameters=_query(_PROJECTION)
            ),
            "put": _operation(f"Replace a {name}", {200: name}, requestBody=_body(name)),
            "patch": _operation(
                f"Change a {name}", {200: name, 204: None}, requestBody=_body("PatchOp")
            ),
            "delete": _operation(f"Delete a {name}", {204: None}),
        }
        paths[f"{collection}/.search"] = {
            "post": _operation(
                f"Search {name}s", {200: "ListResponse"}, requestBody=_body("SearchRequest")
            )
        }
    paths[f"{base_path}/.search"] = {
        "post": _operation(
            "Search all resource types", {200: "ListResponse"}, requestBody=_body("SearchRequest")
        )
    }
    paths[f"{base_path}/Bulk"] = {
        "post": _operation("Bulk operations", {200: "Document"}, requestBody=_body("BulkRequest"))
    }
    paths[f"{base_path}/Me"] = {
        "get": _operation("The signed-in user's own resource", {200: "User"})
    }
    for discovery in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
        paths[f"{base_path}/{discovery}"] = {
            "get": _operation(f"{discovery} (RFC 7644 §4)", {200: "Document"}, security=[])
        }
    paths["/history/{endpoint}/{id}"] = {
        "parameters": [
            {"name": "endpoint", "in": "path", "required": True, "schema": {"type": "string"}},
            resource_id,
        ],
        "get": _operation(
            "Who changed a resource, what and when (the organisation's administrators only)",
            {200: "Document"},
        ),
    }
    paths.update(_EVENT_PATHS)
    # The domain's own routes (``scim.hooks.Domain.routes``), by their handlers' first line.
    for handler in registry.domain.routes():
        if isinstance(handler, HTTPRouteHandler):
            summary = (handler.fn.__doc__ or handler.handler_name).strip().splitlines()[0]
            for path in handler.paths:
                paths[path] = {"get": _operation(summary, {200: "Document"})}
    openapi = {
        "openapi": "3.1.0",
        "info": {
            "title": "SCIM 2.0 provisioning of e-service permissions",
            "version": "1",
            "description": "RFC 7643/7644 Users, Groups, Bulk and search, per organisation.",
        },
        "components": {
            "schemas": _refs(components),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "clientCertificate": {"type": "mutualTLS"},
            },
        },
        "security": [{"bearer": []}, {"clientCertificate": []}],
        "paths": _refs(paths),
    }
    return msgspec.json.encode(openapi)


@get("/openapi.json", name="openapi", include_in_schema=False)
async def openapi(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = document(request.app.state.settings, request.app.state.registry)
    return Response(body, media_type="application/json")
