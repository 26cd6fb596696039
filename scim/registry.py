"""The resource types this server serves and the schemas it validates with.

Discovery (``/Schemas``, ``/ResourceTypes``, ``/ServiceProviderConfig``) is
rendered from the same ``ScimProvider`` that validates every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    ETag,
    Extension,
    Filter,
    Group,
    Pagination,
    Patch,
    Required,
    Resource,
    ResourceType,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
)

from scim.hooks import Domain, Related
from scim.models import EnterpriseUser, User
from scim.settings import Settings

# What identity providers send that the strict reading would refuse: Microsoft
# Entra removes members by a value list and adds entries through a path filter.
POLICY = ScimPolicy(
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


@dataclass(frozen=True)
class ResourceKind:
    """One resource type: its endpoint, its composed model and its schemas."""

    name: str
    endpoint: str
    model: type[Resource[Any]]
    schema: str
    extensions: tuple[str, ...]
    # The attribute (schema, name) holding the person key (``scim.hooks.Domain.person_key``),
    # kept in its own column.
    person_key: tuple[str, str] | None = None
    # What the domain's computed attributes read of related resources.
    related: Related | None = None

    @cached_property
    def required_strings(self) -> tuple[str, ...]:
        """Python names of the core attributes a resource must carry as non-blank text."""
        return tuple(
            name
            for name, field in self.model.model_fields.items()
            if self.model.get_field_annotation(name, Required) == Required.true
            and field.annotation in (str, str | None)
        )

    def person(self, document: dict[str, Any]) -> str | None:
        """The person key a document holds, if this type has one."""
        if self.person_key is None:
            return None
        schema, name = self.person_key
        value = (document.get(schema) or {}).get(name)
        return value if isinstance(value, str) else None

    def storage_path(self, urn: str) -> tuple[str, ...]:
        """Where the attribute a fully qualified URN names sits in the stored document."""
        lowered = urn.lower()
        for schema in self.extensions:
            if lowered.startswith(schema.lower() + ":"):
                return (schema, *urn[len(schema) + 1 :].split("."))
        return tuple(urn[len(self.schema) + 1 :].split("."))


class Registry:
    """Resource types by endpoint and by name, and the provider describing them."""

    def __init__(self, settings: Settings, domain: Domain) -> None:
        self.settings = settings
        self.domain = domain
        cores: dict[str, type[Resource[Any]]] = {"User": User, "Group": Group, **domain.models}
        added: dict[str, list[tuple[type[Extension], bool]]] = {"User": [(EnterpriseUser, False)]}
        for extension in domain.schema_extensions:
            added.setdefault(extension.resource_type, []).append(
                (extension.model, extension.required)
            )
        models: list[type[Resource[Any]] | type[Extension]] = []
        resource_types = []
        for name, core in cores.items():
            schema_extensions = added.get(name, [])
            models += [core, *(model for model, _ in schema_extensions)]
            if schema_extensions:
                union: Any = None
                for extension_model, required in schema_extensions:
                    member = (
                        Annotated[extension_model, Required.true] if required else extension_model
                    )
                    union = member if union is None else union | member
                # The indexing the syntax stands for: mypy reads User[...] as a type.
                core = core.__class_getitem__(union)
            resource_types.append(ResourceType.from_resource(core))
        self.provider = ScimProvider(
            models=models,
            resource_types=resource_types,
            config=self._config(settings),
            policy=POLICY,
        )
        related = {item.resource_type: item for item in domain.related}
        self.kinds: dict[str, ResourceKind] = {}
        for resource_type in self.provider.resource_types:
            model = self.provider.model_for(str(resource_type.name))
            assert model is not None and issubclass(model, Resource)
            name = str(resource_type.name)
            kind = ResourceKind(
                name=name,
                endpoint=str(resource_type.endpoint).strip("/"),
                model=model,
                schema=str(resource_type.schema_),
                extensions=tuple(str(ext.schema_) for ext in resource_type.schema_extensions or []),
                person_key=domain.person_key if name == "User" else None,
                related=related.get(name),
            )
            self.kinds[kind.endpoint.lower()] = kind
        self.by_name = {kind.name: kind for kind in self.kinds.values()}

    def kind_for_endpoint(self, endpoint: str) -> ResourceKind | None:
        return self.kinds.get(endpoint.lower())

    @staticmethod
    def _config(settings: Settings) -> ServiceProviderConfig:
        return ServiceProviderConfig(
            documentation_uri="https://github.com/scim-behorigheter/scim-behorigheter#readme",
            patch=Patch(supported=True),
            bulk=Bulk(
                supported=True,
                max_operations=settings.max_bulk_operations,
                max_payload_size=settings.max_payload_size,
            ),
            filter=Filter(supported=True, max_results=settings.max_page_size),
            change_password=ChangePassword(supported=False),
            sort=Sort(supported=True),
            etag=ETag(supported=True),
            pagination=Pagination(
                cursor=True,
                index=True,
                default_pagination_method="index",
                default_page_size=settings.default_page_size,
                max_page_size=settings.max_page_size,
            ),
            authentication_schemes=_authentication_schemes(settings),
        )


def _authentication_schemes(settings: Settings) -> list[AuthenticationScheme]:
    """RFC 7643 §5: what this server actually accepts, as configured."""
    schemes = [
        AuthenticationScheme(
            type="oauthbearertoken",
            name="Bearer token",
            description=(
                "A token the operator issued to an organisation's identity system "
                "(scim token issue), sent as 'Authorization: Bearer <token>' (RFC 6750)."
            ),
            spec_uri="https://www.rfc-editor.org/rfc/rfc6750",
            primary=settings.ca_bundle is None,
        )
    ]
    if settings.ca_bundle:
        via = "over TLS to this server"
        if settings.trusted_proxies:
            via += " or forwarded by a trusted TLS-terminating proxy (RFC 9440 Client-Cert)"
        schemes.insert(
            0,
            AuthenticationScheme(
                type="tlsclientauth",
                name="Client certificate",
                description=(
                    "A SITHS personal certificate of a registered administrator, or the "
                    "function certificate of a registered identity system, presented "
                    + via
                    + ". The organisation is the one the certificate is registered for."
                ),
                spec_uri="https://www.rfc-editor.org/rfc/rfc8705",
                primary=True,
            ),
        )
    return schemes
