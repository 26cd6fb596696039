"""A PatchOp of assignments applied to the stored document (``scim.protocol.assignments``)
makes what scim2-models' application to the resource's model makes: the same document, the
same answer whether it changed, the same refusal."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scim2_models import Context, PatchOp, SCIMException
from sqlalchemy.ext.asyncio import create_async_engine

from extensions import EServices
from scim.registry import Registry
from scim.service import ResourceService
from scim.settings import Settings
from tests.conftest import ENTERPRISE
from tests.engine.test_patches import OPERATIONS, VALUES, _body

SETTINGS = Settings()
REGISTRY = Registry(SETTINGS, EServices.from_settings(SETTINGS))
SERVICE = ResourceService(REGISTRY, create_async_engine("sqlite+aiosqlite://"), SETTINGS)
USERS = REGISTRY.by_name["User"]
GROUPS = REGISTRY.by_name["Group"]
ESERVICE = next(urn for urn in USERS.extensions if urn != ENTERPRISE)
CORE = USERS.schema
# Stored users, as a create stores them: with and without a name, the enterprise extension.
BODIES = [
    {
        "userName": "anna.berg@kommun.se",
        "name": {"givenName": "Anna", "familyName": "Berg"},
        "displayName": "Anna Berg",
        "active": True,
        "emails": [{"value": "anna.berg@kommun.se", "type": "work"}],
        ENTERPRISE: {"department": "Socialtjänst", "employeeNumber": "17"},
        ESERVICE: {"hsaId": "SE2120001234-a1"},
    },
    {"userName": "bo", "nickName": "bosse", ESERVICE: {"hsaId": "SE2120001234-b2"}},
    {
        "userName": "cecilia",
        "emails": [
            {"value": "c@kommun.se", "type": "work", "primary": True},
            {"value": "cecilia@kommun.se", "type": "Work"},
            {"value": "c@example.se", "type": "home", "display": "Hemma"},
            {"value": "c2@example.se"},
        ],
        "phoneNumbers": [{"value": "+46 8 123 45", "type": "mobile"}],
        "addresses": [{"type": "work", "locality": "Sundsvall", "country": "SE"}],
        ESERVICE: {"hsaId": "SE2120001234-c3"},
    },
]
# Assignments in the forms identity systems send them ("{}": a value).
ASSIGNED: list[list[dict[str, Any]]] = [
    [{"op": "Replace", "path": "name.givenName", "value": "{}"}],
    [
        {"op": "Replace", "path": "name.givenName", "value": "{}"},
        {"op": "Replace", "path": "name.familyName", "value": "{}"},
        {"op": "Replace", "path": "displayName", "value": "{}"},
        {"op": "Add", "path": "title", "value": "{}"},
    ],
    [{"op": "replace", "path": "NAME.GIVENNAME", "value": "{}"}],
    [{"op": "replace", "path": f"{CORE}:displayName", "value": "{}"}],
    [{"op": "replace", "path": f"{CORE}:name.middleName", "value": "{}"}],
    [{"op": "Add", "path": f"{ENTERPRISE}:department", "value": "{}"}],
    [{"op": "replace", "path": f"{ESERVICE}:hsaId", "value": "{}"}],
    [{"op": "replace", "path": "userName", "value": "{}"}],
    [{"op": "replace", "path": "externalId", "value": "{}"}],
    [{"op": "replace", "path": "name", "value": {"givenName": "{}", "Formatted": "{}"}}],
    [{"op": "replace", "value": {"active": "{}"}}],
    [{"op": "replace", "value": {"name": {"familyName": "{}"}, "nickName": "{}"}}],
    [{"op": "replace", "value": {"name.familyName": "{}", "schemas": ["{}"]}}],
    [{"op": "replace", "value": {ENTERPRISE: {"division": "{}", "costCenter": "{}"}}}],
    [{"op": "add", "value": {f"{ENTERPRISE}:organization": "{}"}}],
    [{"op": "replace", "path": ENTERPRISE, "value": {"division": "{}"}}],
    [{"op": "Replace", "path": 'emails[type eq "work"].value', "value": "{}"}],
    [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "{}"},
        {"op": "Replace", "path": 'emails[type eq "work"].display', "value": "{}"},
        {"op": "Replace", "path": "displayName", "value": "{}"},
    ],
    [{"op": "Add", "path": f'{CORE}:emails[type eq "WORK"].display', "value": "{}"}],
]
# Paths through filters: selecting values of the stored users or none, of a form taken
# here or not (another operator, an escape, two comparisons), writing what scim2-models
# writes otherwise (primary, an enum).
FILTERED = (
    'phoneNumbers[type eq "mobile"].value',
    'addresses[type eq "work"].locality',
    'emails[type eq "home"].primary',
    'emails[value eq "c@kommun.se"].type',
    'emails[display eq "Hemma"].value',
    'emails[type eq "other"].value',
    'emails[type Eq "work"].value',
    'emails[type eq "w\\u006frk"].value',
    'emails[type eq "w\\"ork"].value',
    'emails[type eq "w\\qork"].value',
    'emails[type eq "work" or type eq "home"].value',
)
# And others, near them or not.
ASSIGNMENTS = [
    *ASSIGNED,
    [{"op": "replace", "value": {}}],
    *([{"op": "Replace", "path": path, "value": "{}"}] for path in FILTERED),
    [{"op": "Replace", "path": "profileUrl", "value": "{}"}],  # a Reference, not a plain string
    [{"op": "replace", "value": {"name": "{}"}}],
    [{"op": "replace", "path": "title", "value": ["{}"]}],
    [{"op": "replace", "path": "title", "value": {"value": "{}"}}],
    [{"op": "replace", "path": "title", "value": "{}"}, {"op": "remove", "path": "title"}],
    # Forms taken as sent or not: an op's case or spaces, a path's, a member too many.
    [{"op": "REPLACE", "path": "title", "value": "{}"}],
    [{"op": "replace ", "path": "title", "value": "{}"}],
    [{"op": "replace", "path": " title", "value": "{}"}],
    [{"op": "replace", "path": "title ", "value": "{}"}],
    [{"op": "replace", "path": "", "value": "{}"}],
    [{"op": "replace", "path": None, "value": {"title": "{}"}}],
    [{"op": "replace", "path": "title", "value": "{}", "Value": "{}"}],
    [{"op": "replace", "path": "title", "value": "{}", "display": "{}"}],
    [{"Op": "replace", "path": "title", "value": "{}"}],
    [{"op": "replace", "path": "name.givenName.x", "value": "{}"}],
    *OPERATIONS,
]
# Besides strings: what a boolean or a number may be sent as, and what neither is.
LITERALS: list[Any] = [
    *VALUES,
    *("c@kommun.se", "NY@Kommun.SE", "https://kommun.se/c"),
    *(True, False, 0, 1, 2, 1.5, "yes", "off", " ", None),
]


def _outcome(patched: Any, kind: Any, stored: dict[str, Any], body: dict[str, Any]) -> Any:
    """What applying ``body`` to ``stored`` by ``patched`` gives: changed and the document
    to store, or the refusal; None if the body is not a valid PatchOp at all."""
    try:
        operations = SERVICE._operations(kind, body, body["Operations"])
    except SCIMException:
        return None
    # Operations taken as sent are those of a valid PatchOp, and no others.
    try:
        operations.patch()
    except SCIMException as refusal:
        raise AssertionError(f"taken as sent, but refused as a PatchOp: {body}") from refusal
    before = json.dumps(stored, sort_keys=True)
    try:
        outcome: Any = patched(kind, SimpleNamespace(data=stored), operations)
    except SCIMException as refusal:
        outcome = ("refused", type(refusal).__name__, refusal.scim_type, refusal.detail)
    assert json.dumps(stored, sort_keys=True) == before, "the stored document was changed"
    if isinstance(outcome, tuple) and isinstance(outcome[1], dict):
        assert _plain(outcome[1]), outcome[1]
    return outcome


def _plain(value: Any) -> bool:
    """Whether a document holds JSON's own types only, as stored documents do (a value that
    only compares equal to a string, an enum say, is not one)."""
    if isinstance(value, dict):
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return type(value) in (str, int, float, bool, type(None))


def _stored(body: dict[str, Any]) -> dict[str, Any]:
    created = SERVICE._validate(USERS, body, Context.RESOURCE_CREATION_REQUEST)
    return SERVICE._storable(USERS, created, Context.RESOURCE_CREATION_REQUEST)


STORED = [_stored(body) for body in BODIES]


def _as_model(kind: Any, row: Any, operations: Any) -> Any:
    return SERVICE._patched_as_model(kind, row, operations.patch())


def _same(kind: Any, stored: dict[str, Any], body: dict[str, Any]) -> None:
    assert _outcome(SERVICE._patched, kind, stored, body) == _outcome(
        _as_model, kind, stored, body
    ), body


@pytest.mark.parametrize("operations", ASSIGNMENTS, ids=lambda o: json.dumps(o)[:70])
def test_each_body_applies_as_on_the_model(operations: list[dict[str, Any]]) -> None:
    for stored in STORED:
        for n, literal in enumerate(LITERALS):
            _same(USERS, stored, _body(operations, [literal, *LITERALS[n + 1 :], *LITERALS]))
        # A value already stored: nothing changes.
        _same(USERS, stored, _body(operations, ["Anna", "Berg", "Anna Berg", "17"]))


@settings(max_examples=300, deadline=None)
@given(
    operations=st.sampled_from(ASSIGNMENTS),
    values=st.lists(
        st.one_of(st.text(), st.booleans(), st.integers(), st.none()), min_size=4, max_size=4
    ),
    stored=st.sampled_from(STORED),
)
def test_any_value_applies_as_on_the_model(
    operations: list[dict[str, Any]], values: list[Any], stored: dict[str, Any]
) -> None:
    _same(USERS, stored, _body(operations, values))


@pytest.mark.parametrize(
    "body",
    [
        {"Operations": [{"op": "replace", "path": "title", "value": "Chef"}]},
        {"schemas": [], "Operations": [{"op": "replace", "path": "title", "value": "Chef"}]},
        {"schemas": "x", "Operations": [{"op": "replace", "path": "title", "value": "Chef"}]},
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Chef"}],
            "id": "7",
        },
    ],
)
def test_a_body_of_other_members_or_schemas_applies_as_on_the_model(body: dict[str, Any]) -> None:
    for stored in STORED:
        _same(USERS, stored, body)


def test_a_group_renamed_as_on_the_model() -> None:
    stored = {"schemas": [GROUPS.schema], "displayName": "Ekonomi"}
    for operations in (
        [{"op": "replace", "value": {"displayName": "{}"}}],
        [{"op": "Replace", "path": "displayName", "value": "{}"}],
        [{"op": "replace", "path": "externalId", "value": "{}"}],
    ):
        for name in ("Ekonomi", "Socialtjänst", "", None):
            _same(GROUPS, stored, _body(operations, [name]))


@pytest.fixture
def applied_to_models(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The PatchOps scim2-models applies while the test runs."""
    applied: list[Any] = []
    patch = PatchOp.patch

    def counted(self: Any, resource: Any, *args: Any, **kwargs: Any) -> Any:
        applied.append(self)
        return patch(self, resource, *args, **kwargs)

    monkeypatch.setattr(PatchOp, "patch", counted)
    return applied


def test_what_identity_systems_send_most_is_applied_to_the_document(
    applied_to_models: list[Any],
) -> None:
    """Entra ID's and Okta's assignments never build the model (the point of the module)."""
    for operations in [*ASSIGNED, [{"op": "Replace", "path": "active", "value": "{}"}]]:
        body = _body(operations, ["asa.oberg@kommun.se", "Öberg", "Åsa Öberg", "Chef"])
        if operations[0].get("path") == "active" or "active" in operations[0].get("value", ()):
            body = _body(operations, [False])
        patch = SERVICE._operations(USERS, body, body["Operations"])
        changed, document = SERVICE._patched(USERS, SimpleNamespace(data=STORED[0]), patch)
        assert changed and document is not None, operations
        # Taken as sent: not even a PatchOp is made of them.
        assert patch.writes is not None and patch.validated is None, operations
    assert applied_to_models == []


def test_the_rest_is_left_to_the_model(applied_to_models: list[Any]) -> None:
    for operations, literal in (
        ([{"op": "replace", "path": "title", "value": "{}"}], None),  # unassigns
        ([{"op": "replace", "path": "displayName", "value": "{}"}], "  "),  # blank
        ([{"op": "replace", "path": "active", "value": "{}"}], "maybe"),  # not a boolean
        ([{"op": "add", "path": 'emails[type eq "work"].value', "value": "{}"}], "a@b.se"),
        ([{"op": "replace", "path": f"{ENTERPRISE}:department", "value": "{}"}], "IT"),
    ):
        body = _body(operations, [literal])
        patch = SERVICE._operations(USERS, body, body["Operations"])
        # The second stored user has no enterprise extension: it joins the resource.
        with contextlib.suppress(SCIMException):
            SERVICE._patched(USERS, SimpleNamespace(data=STORED[1]), patch)
    assert len(applied_to_models) == 5
