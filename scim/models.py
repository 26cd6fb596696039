"""The core resource models the engine serves, as scim2-models defines them except that a
User's e-mail addresses are validated by ``scim.emails`` (the same result, faster)."""

from __future__ import annotations

from typing import ClassVar

from scim2_models import ComplexAttribute
from scim2_models import Email as CoreEmail
from scim2_models import User as CoreUser

from scim.emails import EmailAddress


# No docstring: it would become a description the published schemas do not have.
class Email(CoreEmail):
    value: EmailAddress | None = None
    """Email addresses for the user."""


class User(CoreUser):  # type: ignore[type-arg]
    # A list of the subclass: mypy holds lists invariant, pydantic validates with this type.
    emails: list[Email] | None = None  # type: ignore[assignment]
    """Email addresses for the user."""

    Emails: ClassVar[type[ComplexAttribute]] = Email
