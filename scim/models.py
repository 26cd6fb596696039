"""The core resource models the engine serves, as scim2-models defines them except that a
User's e-mail addresses are validated by ``scim.emails`` (the same result, faster), its
certificates must be base64 as RFC 4648 writes it, and the enterprise manager is as RFC 7643
§4.3 has it."""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError
from scim2_models import CaseExact, ComplexAttribute, Mutability, Reference
from scim2_models import Email as CoreEmail
from scim2_models import EnterpriseUser as CoreEnterpriseUser
from scim2_models import User as CoreUser
from scim2_models import X509Certificate as CoreX509Certificate

from scim.emails import EmailAddress


# No docstring: it would become a description the published schemas do not have.
class Email(CoreEmail):
    value: EmailAddress | None = None
    """Email addresses for the user."""


class X509Certificate(CoreX509Certificate):
    @field_validator("value", mode="before")
    @classmethod
    def _base64(cls, value: Any) -> Any:
        """RFC 7643 §2.3.6: a binary value is base64 (RFC 4648 §4), and RFC 4648 §3.3 has
        data with characters outside its alphabet refused. pydantic's ``Base64Bytes`` skips
        them: ``"!!!"`` would be stored as an empty value."""
        if isinstance(value, str):
            try:
                b64decode(value, validate=True)
            except (binascii.Error, ValueError) as error:
                raise PydanticCustomError(
                    "value_error", "value is not base64 (RFC 4648 §4): {reason}", {"reason": error}
                ) from error
        return value


class User(CoreUser):  # type: ignore[type-arg]
    # A list of the subclass: mypy holds lists invariant, pydantic validates with this type.
    emails: list[Email] | None = None  # type: ignore[assignment]
    """Email addresses for the user."""

    x509_certificates: list[X509Certificate] | None = None  # type: ignore[assignment]
    """A list of certificates issued to the User."""

    Emails: ClassVar[type[ComplexAttribute]] = Email
    X509Certificates: ClassVar[type[ComplexAttribute]] = X509Certificate


class Manager(ComplexAttribute):
    # RFC 7643 §4.3: neither sub-attribute is required; a manager may be named by id alone.
    value: Annotated[str | None, CaseExact.true] = None
    """The id of the SCIM resource representing the User's manager."""

    ref: Reference["User"] | None = Field(  # noqa: UP037 - the referenced type, by name
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    """The URI of the SCIM resource representing the User's manager."""

    display_name: Annotated[str | None, Mutability.read_only] = None
    """The displayName of the User's manager."""


class EnterpriseUser(CoreEnterpriseUser):
    manager: Manager | None = None  # type: ignore[assignment]
    """The User's manager."""

    @field_validator("manager", mode="before")
    @classmethod
    def _named_by_id(cls, value: Any) -> Any:
        """Microsoft Entra ID sends the manager as the bare id of a User."""
        return {"value": value} if isinstance(value, str) else value
