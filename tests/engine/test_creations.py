"""A creation body of a shape seen before (``scim.protocol.creations``) gives what validating
it whole gives: the same document to store, or the same refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import SCIMException, ScimPolicy
from sqlalchemy.ext.asyncio import create_async_engine

from extensions import EServices
from scim.protocol.creations import Creations
from scim.registry import Registry
from scim.service import ResourceService
from scim.settings import Settings
from tests.conftest import ENTERPRISE, ESERVICES, STATLIG, USER_SCHEMA

SETTINGS = Settings()
SERVICE = ResourceService(
    Registry(SETTINGS, EServices.from_settings(SETTINGS)),
    create_async_engine("sqlite+aiosqlite://"),  # never connected: nothing here is stored
    SETTINGS,
)
USER = SERVICE.registry.by_name["User"]

# "{}" stands for a string. What Microsoft Entra ID and Okta send when they create a user
# (their provisioning docs, as tests/idp replays them), and what no client should.
BODIES: list[dict[str, Any]] = [
    {  # Entra ID
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": "{}",
        "userName": "{}",
        "active": True,
        "addresses": [],
        "displayName": "{}",
        "emails": [{"primary": True, "type": "{}", "value": "{}"}],
        "meta": {"resourceType": "{}"},
        "name": {"formatted": "{}", "familyName": "{}", "givenName": "{}"},
        "phoneNumbers": [],
        "roles": [],
        "title": "{}",
        ENTERPRISE: {"employeeNumber": "{}", "department": "{}", "manager": "{}"},
        ESERVICES: {"hsaId": "{}"},
    },
    {  # Okta
        "schemas": [USER_SCHEMA, ESERVICES],
        "userName": "{}",
        "name": {"givenName": "{}", "familyName": "{}"},
        "emails": [{"primary": True, "value": "{}", "type": "{}"}],
        "displayName": "{}",
        "locale": "{}",
        "externalId": "{}",
        "groups": [],
        "password": "{}",
        "active": True,
        ESERVICES: {"hsaId": "{}"},
    },
    {  # the extension's permissions, names in other cases, read-only attributes sent
        "schemas": [USER_SCHEMA, ESERVICES],
        "USERNAME": "{}",
        "id": "{}",
        "Name": {"GivenName": "{}", "familyname": "{}"},
        "emails": [{"value": "{}"}, {"value": "{}", "type": "{}", "display": "{}"}],
        "phoneNumbers": [{"value": "{}", "type": "{}"}],
        "addresses": [{"streetAddress": "{}", "locality": "{}", "type": "{}", "primary": True}],
        ESERVICES: {
            "hsaId": "{}",
            "permissions": [{"value": "{}", "service": STATLIG, "permission": "{}"}],
            "effectivePermissions": [{"value": "{}", "service": "{}", "permission": "{}"}],
        },
        "meta": {"created": "2011-05-13T04:42:34Z", "version": "{}"},
        "groups": [{"value": "{}", "display": "{}"}],
    },
    {  # what no client should send
        "schemas": [USER_SCHEMA],
        "userName": "{}",
        "nickName": None,
        "photos": [{"value": "{}"}],
        "x509Certificates": [{"value": "{}"}],
        "profileUrl": "{}",
        "noSuchAttribute": "{}",
        "emails": [{"value": "{}", "primary": True}, {"value": "{}", "primary": True}],
    },
    {"schemas": [USER_SCHEMA], "userName": "{}", "name": "{}", "emails": "{}"},
    {"schemas": [USER_SCHEMA], "displayName": "{}"},
    {"schemas": ["{}"], "userName": "{}"},
    {"userName": "{}", ESERVICES: {"hsaId": "{}", "permissions": "{}"}},
]
# The bodies above this one are accepted with some of the values below.
ACCEPTED = 3
VALUES = [
    "anna.ek@kommun.se",
    "Anna Ek",
    "",
    "   ",
    "work",
    "Work",
    "WORK",
    "home",
    "Postmaster@Kommun.SE",
    "anna@KOMMUN.se",
    "not an address",
    "a" * 300,
    "\ue000",
    "\ue0000\ue000",
    "2011-05-13T04:42:34Z",
    "https://kommun.se/anna.jpg",
    "MIIBIjANBgkq",
    "!!!",
    "\u212a",  # Kelvin sign
    "Åsa Öberg",
    "SE2120000142-ANNA",
]


def _body(template: dict[str, Any], values: list[str]) -> dict[str, Any]:
    """The template with each "{}" one of ``values`` in turn."""
    text = json.dumps(template)
    for value in values:
        text = text.replace('"{}"', json.dumps(value), 1)
    body: dict[str, Any] = json.loads(text)
    return body


def _outcome(document: Any, body: dict[str, Any]) -> Any:
    """The document validation makes of ``body``, or how it is refused."""
    try:
        return ("stored", document(USER.model, _whole, body))
    except SCIMException as error:
        return ("refused", error.status, error.scim_type, error.detail)


def _whole(body: dict[str, Any]) -> dict[str, Any]:
    return SERVICE.new_document(USER, body)


def _validated_whole(_model: Any, _whole: Any, body: dict[str, Any]) -> dict[str, Any]:
    # The class's own function: what the ``validated`` fixture does not count.
    return ResourceService.new_document(SERVICE, USER, body)


@pytest.mark.parametrize("number", range(len(BODIES)))
def test_each_body_of_a_shape_is_taken_as_validated_whole(
    number: int, validated: list[dict[str, Any]]
) -> None:
    creations = Creations(SERVICE.registry.provider.policy)
    template = BODIES[number]
    strings = json.dumps(template).count('"{}"')
    # Each string in turn each of the values, the others a valid one. A shape is validated
    # whole when first seen, with its marks when seen again, and then taken: each body
    # comes three times.
    bodies = [
        _body(template, [VALUES[0]] * place + [value] + [VALUES[0]] * (strings - place - 1))
        for place in range(strings)
        for value in VALUES
    ] * 3
    taken = 0
    for body in bodies:
        before = len(validated)
        assert _outcome(creations.document, body) == _outcome(_validated_whole, body), body
        taken += len(validated) == before
    if number < ACCEPTED:  # some of these bodies took their shape's document
        assert taken > 0


@settings(max_examples=100, deadline=None)
@given(
    template=st.sampled_from(BODIES[:ACCEPTED]),
    values=st.lists(
        st.lists(st.text(min_size=1) | st.emails() | st.sampled_from(VALUES[:2]), min_size=24),
        min_size=2,
        max_size=4,
    ),
)
def test_any_string_is_taken_as_validated_whole(
    template: dict[str, Any], values: list[list[str]]
) -> None:
    """Bodies of one shape (no string empty) with any strings: after the first two (seen,
    learnt), each is taken as validated whole, or refused as validation whole refuses it."""
    creations = Creations(SERVICE.registry.provider.policy)
    for body in [_body(template, values[0]), *(_body(template, v) for v in values)]:
        assert _outcome(creations.document, body) == _outcome(_validated_whole, body), body


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The bodies validated whole while the test runs."""
    bodies: list[dict[str, Any]] = []
    validate = SERVICE.new_document

    def counted(kind: Any, body: dict[str, Any]) -> dict[str, Any]:
        bodies.append(body)
        return validate(kind, body)

    monkeypatch.setattr(SERVICE, "new_document", counted)
    return bodies


def test_a_shape_seen_before_is_not_validated_again(validated: list[dict[str, Any]]) -> None:
    creations = Creations(SERVICE.registry.provider.policy)
    for n in range(5):
        given, family = f"Anna{n}", f"Ek{n}"
        # userName, name, the address and its type, displayName, locale, externalId,
        # password, HSA-id
        values = [f"{given}.{family}@Kommun.se", given, family, f"a{n}@kommun.se", "Work"]
        values += [f"{given} {family}", "sv-SE", f"0{n}", "secret", f"SE2120000142-{n}"]
        body = _body(BODIES[1], values)
        document = creations.document(USER.model, _whole, body)
        assert document["name"] == {"givenName": given, "familyName": family}
        assert document["emails"] == [{"primary": True, "value": f"a{n}@kommun.se", "type": "work"}]
        assert document[ESERVICES] == {"hsaId": f"SE2120000142-{n}"}
        assert "password" not in document
    # The first body whole, the second's shape (its strings marks), no more.
    assert len(validated) == 2, validated
    assert "\ue000" in json.dumps(validated[1], ensure_ascii=False)


def test_a_string_of_another_type_belongs_to_the_shape(validated: list[dict[str, Any]]) -> None:
    """A string of a type validated otherwise than as text, an address or a canonical value
    (here a reference, RFC 7643 §2.3.7) is part of the shape: each value its own."""
    creations = Creations(SERVICE.registry.provider.policy)
    for n in range(4):
        hsa = {"hsaId": f"SE2120000142-{n}"}
        body = {"userName": f"anna{n}", "profileUrl": f"https://kommun.se/{n}", ESERVICES: hsa}
        document = creations.document(USER.model, _whole, body)
        assert document["profileUrl"] == f"https://kommun.se/{n}"
    assert len(validated) == 4
    for n in range(2):
        body = {"userName": f"anna{n}", "profileUrl": "https://kommun.se/", ESERVICES: hsa}
        creations.document(USER.model, _whole, body)
    assert len(validated) == 6  # the second: the shape's marked body


def test_every_body_is_validated_whole_where_strings_are_compared_otherwise(
    validated: list[dict[str, Any]],
) -> None:
    """Under a comparison key of its own, scim2-models checks every string's text on
    validation (RFC 7643 §2.2 caseExact): no shape stands for it."""
    policy = ScimPolicy(comparison_key=lambda _binding, value: value)
    creations = Creations(policy)
    for n in range(4):
        body = {"userName": f"anna{n}", ESERVICES: {"hsaId": f"SE2120000142-{n}"}}
        assert creations.document(USER.model, _whole, body)["userName"] == f"anna{n}"
    assert len(validated) == 4
