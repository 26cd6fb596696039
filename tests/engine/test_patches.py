"""A PatchOp of a shape seen before (``scim.protocol.patches``) is what validating it from the
start makes of it: the same operations, the same refusal, the same resource once applied."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scim2_models import Context, PatchOp, SCIMException

from scim.hooks import Domain
from scim.protocol.patches import Patches
from scim.registry import Registry
from scim.settings import Settings
from tests.conftest import ENTERPRISE
from tests.engine.conftest import create_user

REGISTRY = Registry(Settings(), Domain())
USER = REGISTRY.by_name["User"].model
GROUP = REGISTRY.by_name["Group"].model
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# "{}" stands for a string value. What Microsoft Entra ID and Okta send (their provisioning
# docs), and what no client should.
OPERATIONS: list[list[dict[str, Any]]] = [
    [{"op": "replace", "path": "name.givenName", "value": "{}"}],
    [{"op": "Replace", "path": "active", "value": "{}"}],
    [{"op": "Replace", "path": "displayName", "value": "{}"}],
    [{"op": "Add", "path": 'emails[type eq "work"].value', "value": "{}"}],
    [{"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "{}"}],
    [{"op": "Add", "path": f"{ENTERPRISE}:department", "value": "{}"}],
    [{"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "{}"}],
    [{"op": "replace", "value": {"active": False}}],
    [{"op": "replace", "value": {"id": "{}", "name": {"givenName": "{}"}, "title": "{}"}}],
    [
        {"op": "Replace", "path": "userName", "value": "{}"},
        {"op": "Replace", "path": "name.familyName", "value": "{}"},
        {"op": "Remove", "path": "nickName"},
    ],
    [{"op": "add", "path": "emails", "value": [{"value": "{}", "type": "{}"}]}],
    [{"op": "add", "path": "emails", "value": ["{}"]}],
    [{"op": "remove", "path": "emails", "value": [{"value": "{}"}]}],
    [{"op": "remove", "path": 'emails[value eq "a@b.se"]'}],
    [{"op": "add", "path": "title", "value": None}],
    [{"op": "replace", "path": "userName", "value": None}],
    [{"op": "replace", "path": "meta.created", "value": "{}"}],
    [{"op": "replace", "path": "id", "value": "{}"}],
    [{"op": "replace", "path": "noSuchAttribute", "value": "{}"}],
    [{"op": "replace", "value": "{}"}],
    [{"op": "replace", "value": {"noSuchAttribute": "{}"}}],
    [{"op": "move", "path": "title", "value": "{}"}],
    [{"op": "add", "path": "emails[type eq ", "value": "{}"}],
    [{"op": "replace", "path": "title"}],
    [{"op": "remove"}],
    # One member twice, in two cases: validation reads the last.
    [{"op": "replace", "path": "title", "value": "{}", "Value": "{}"}],
    [{"op": "replace", "Path": "title", "path": "nickName", "value": "{}"}],
]
VALUES = [
    "bjensen",
    "Åsa Öberg",
    "False",
    "true",
    "anna@kommun.se",
    'x" or userName pr or "',
    "",
    "\ue000",
    "2011-05-13T04:42:34Z",
    "\u212a",  # Kelvin sign
]


def _body(operations: list[dict[str, Any]], values: list[str]) -> dict[str, Any]:
    """The operations with each "{}" one of ``values`` in turn."""
    text = json.dumps(operations)
    for value in values:
        text = text.replace('"{}"', json.dumps(value), 1)
    return {"schemas": [PATCH_SCHEMA], "Operations": json.loads(text)}


def _from_the_start(model: Any, body: dict[str, Any]) -> PatchOp[Any]:
    return PatchOp[model].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST)


def _outcome(validate: Any, model: Any, body: dict[str, Any]) -> Any:
    """What validating ``body`` gives, and what applying it to a user gives."""
    with REGISTRY.provider:
        try:
            patch = validate(model, body)
        except ValidationError as error:
            return ("refused", [(e["type"], e["msg"]) for e in error.errors()])
        validated = [
            (operation.op, str(operation.path), operation.value, operation.model_fields_set)
            for operation in patch.operations
        ]
        user = model.model_validate(
            {"userName": "anna", "nickName": "ankan", "emails": [{"value": "a@b.se"}]}
        )
        try:
            changed = patch.patch(user)
        except (SCIMException, ValidationError) as error:
            return ("taken", validated, "not applied", type(error).__name__, str(error))
        return ("taken", validated, changed, user.model_dump())


@pytest.mark.parametrize("operations", OPERATIONS, ids=lambda o: json.dumps(o)[:60])
def test_each_body_of_a_shape_is_validated_as_from_the_start(
    operations: list[dict[str, Any]],
) -> None:
    patches = Patches()
    for value in VALUES * 2:
        body = _body(operations, [value, *reversed(VALUES)])
        assert _outcome(patches.validate, USER, body) == _outcome(_from_the_start, USER, body)


@settings(max_examples=200, deadline=None)
@given(
    operations=st.sampled_from(OPERATIONS),
    values=st.lists(st.text(), min_size=4, max_size=4),
)
def test_any_string_is_taken_as_from_the_start(
    operations: list[dict[str, Any]], values: list[str]
) -> None:
    patches = Patches()
    for round_ in range(3):
        body = _body(operations, values[round_:] + values[:round_])
        assert _outcome(patches.validate, USER, body) == _outcome(_from_the_start, USER, body)


def test_a_group_rename_as_okta_sends_it() -> None:
    patches = Patches()
    for name in ("Ekonomi", "Socialtjänst", "IT"):
        body = _body([{"op": "replace", "value": {"displayName": "{}"}}], [name])
        with REGISTRY.provider:
            patch = patches.validate(GROUP, body)
        assert patch.operations is not None and patch.operations[0].value == {"displayName": name}


@pytest.fixture
def validated(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The bodies scim2-models validates as PatchOps while the test runs."""
    bodies: list[Any] = []
    validate = PatchOp.model_validate.__func__  # type: ignore[attr-defined]

    def counted(cls: Any, body: Any, **options: Any) -> Any:
        bodies.append(body)
        return validate(cls, body, **options)

    monkeypatch.setattr(PatchOp, "model_validate", classmethod(counted))
    return bodies


def test_a_shape_seen_before_is_not_validated_again(validated: list[Any]) -> None:
    patches = Patches()
    for n in range(5):
        body = _body(OPERATIONS[0], [f"Anna {n}"])
        with REGISTRY.provider:
            patch = patches.validate(USER, body)
        assert patch.operations is not None and patch.operations[0].value == f"Anna {n}"
    # The first body from the start, the second's shape (its string a mark), no more.
    assert len(validated) == 2, validated


def test_a_shape_in_use_outlasts_a_flood_of_others(validated: list[Any]) -> None:
    patches = Patches()
    with REGISTRY.provider:
        for n in range(1000):
            if n % 100 == 0:
                patches.validate(USER, _body(OPERATIONS[0], [f"Anna {n}"]))
            # A shape of its own: a filter on another address.
            path = f'emails[value eq "user{n}@kommun.se"].type'
            patches.validate(USER, _body([{"op": "replace", "path": path, "value": "{}"}], ["w"]))
    paths = [body["Operations"][0]["path"] for body in validated]
    assert paths.count("name.givenName") == 2


def test_a_large_shape_is_not_kept(validated: list[Any]) -> None:
    """A body whose shape is large (here a long filter in a path) is validated whole each
    time: 512 of them kept would hold memory no identity system's PATCH needs."""
    patches = Patches()
    for size in (100, 3000):
        validated.clear()
        path = f'emails[value eq "{"a" * size}@kommun.se"].type'
        for value in ("work", "home", "other", "work"):
            with REGISTRY.provider:
                patch = patches.validate(
                    USER, _body([{"op": "replace", "path": path, "value": "{}"}], [value])
                )
            assert patch.operations is not None and patch.operations[0].value == value
        # The small shape validated twice (from the start, then with its mark), then kept;
        # the large one each time.
        assert len(validated) == (2 if size == 100 else 4), size


async def test_concurrent_patches_of_one_shape_each_write_their_own_values(
    client: httpx.AsyncClient,
) -> None:
    """Twenty PATCHes of one shape at once, as an identity system's sync sends them: each
    user gets the values of its own request, none another's or the shape's marks."""
    users = [await create_user(client, f"samtidig{n}@kommun.se") for n in range(20)]
    operations = [
        {"op": "Replace", "path": "name.givenName", "value": "{}"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "{}"},
        {"op": "Replace", "value": {"title": "{}", "nickName": "{}"}},
    ]

    async def patch(n: int, user: dict[str, Any]) -> httpx.Response:
        values = [f"Given{n}", f"work{n}@kommun.se", f"Title{n}", f"Nick{n}"]
        return await client.patch(f"/Users/{user['id']}", json=_body(operations, values))

    answers = await asyncio.gather(*(patch(n, user) for n, user in enumerate(users)))
    assert [answer.status_code for answer in answers] == [200] * 20, answers[0].text
    for n, user in enumerate(users):
        stored = (await client.get(f"/Users/{user['id']}")).json()
        assert stored["name"]["givenName"] == f"Given{n}"
        assert stored["emails"] == [{"type": "work", "value": f"work{n}@kommun.se"}]
        assert (stored["title"], stored["nickName"]) == (f"Title{n}", f"Nick{n}")
