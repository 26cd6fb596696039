"""``attributes`` and ``excludedAttributes`` on stored documents (``scim.protocol.projection``):
what a plan decides for an attribute name it decides once, and the next document of a page
gets the same projection as the first."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from scim2_models import EnterpriseUser, User

from scim.protocol.projection import Projector

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def projector() -> Projector:
    return Projector(User.to_schema(), [EnterpriseUser.to_schema()])


def document(extension_key: str = ENTERPRISE, **extension: Any) -> dict[str, Any]:
    return {
        "schemas": [USER, ENTERPRISE],
        "id": "4a9b",
        "userName": "bjensen",
        "password": "never shown",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work"}],
        extension_key: extension or {"department": "Tour Operations", "costCenter": "4130"},
    }


@pytest.mark.parametrize(
    ("attributes", "excluded", "expected"),
    [
        (
            None,
            None,
            {
                "schemas": [USER, ENTERPRISE],
                "id": "4a9b",
                "userName": "bjensen",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "bjensen@example.com", "type": "work"}],
                ENTERPRISE: {"department": "Tour Operations", "costCenter": "4130"},
            },
        ),
        (
            None,
            [f"{ENTERPRISE}:costCenter", "emails"],
            {
                "schemas": [USER, ENTERPRISE],
                "id": "4a9b",
                "userName": "bjensen",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                ENTERPRISE: {"department": "Tour Operations"},
            },
        ),
        (
            ["name.familyName", f"{ENTERPRISE}:department"],
            None,
            {
                "schemas": [USER, ENTERPRISE],
                "id": "4a9b",
                "name": {"familyName": "Jensen"},
                ENTERPRISE: {"department": "Tour Operations"},
            },
        ),
        (
            ["userName"],
            None,
            {"schemas": [USER], "id": "4a9b", "userName": "bjensen"},
        ),
    ],
)
def test_each_document_of_a_page_is_projected_alike(
    attributes: list[str] | None, excluded: list[str] | None, expected: dict[str, Any]
) -> None:
    """RFC 7644 §3.4.2.5 and RFC 7643 §7 (``password`` is returned never); RFC 7643 §3:
    ``schemas`` names the extensions present. A plan decides once per attribute name, the
    extensions' included: the tenth document is projected as the first, and none is
    changed."""
    plan = projector().plan(attributes, excluded)
    for _ in range(10):
        stored = document()
        kept = copy.deepcopy(stored)
        assert plan.apply(stored) == expected
        assert stored == kept


def test_an_extension_stored_under_its_urn_in_another_case_stays_in_schemas() -> None:
    """Attribute names and URNs are case-insensitive (RFC 7643 §2.1): an extension whose
    attributes are present under its URN in other letters is one ``schemas`` names."""
    plan = projector().plan(None, None)
    projected = plan.apply(document(ENTERPRISE.upper()))
    assert projected["schemas"] == [USER, ENTERPRISE]
    assert projected[ENTERPRISE.upper()] == {"department": "Tour Operations", "costCenter": "4130"}


def test_an_extension_with_nothing_returned_leaves_schemas() -> None:
    """An extension none of whose attributes is returned is no longer named in ``schemas``,
    whichever document of the page it is."""
    plan = projector().plan(None, [f"{ENTERPRISE}:department", f"{ENTERPRISE}:costCenter"])
    for _ in range(3):
        projected = plan.apply(document())
        assert projected["schemas"] == [USER]
        assert ENTERPRISE not in projected


def layouts() -> list[dict[str, Any]]:
    """Documents of different sets of names, in turn: what one plan meets in a page."""
    whole = document()
    no_password = {k: v for k, v in whole.items() if k != "password"}
    bare = {k: v for k, v in no_password.items() if k != ENTERPRISE}
    return [
        whole,
        no_password,
        bare,
        {**bare, "schemas": [USER, ENTERPRISE]},  # names an extension it does not hold
        {**bare, "USERNAME": "other letters", "madeUp": 1},
        document(ENTERPRISE.upper(), manager={"value": "26118915-6090-4610-87e4-49d8ca9f808d"}),
        {**whole, ENTERPRISE: {}},
        dict(reversed(list(whole.items()))),
    ]


@pytest.mark.parametrize(
    ("attributes", "excluded"),
    [
        (None, None),
        (None, ["emails", f"{ENTERPRISE}:costCenter"]),
        (["userName", f"{ENTERPRISE}:department"], None),
        ([ENTERPRISE], None),
        (None, [ENTERPRISE]),
    ],
)
def test_a_plan_projects_each_layout_as_a_new_plan_would(
    attributes: list[str] | None, excluded: list[str] | None
) -> None:
    """What a plan changes in a document is found once per set of attribute names: each
    document, whichever came before it, is projected as by a plan that meets it first, and
    none is changed."""
    plan = projector().plan(attributes, excluded)
    for _ in range(3):
        for stored in layouts():
            kept = copy.deepcopy(stored)
            fresh = projector().plan(attributes, excluded)
            assert plan.apply(stored) == fresh.apply(copy.deepcopy(stored)), stored
            assert stored == kept


def test_a_document_returned_whole_is_not_copied() -> None:
    plan = projector().plan(None, None)
    bare = {k: v for k, v in document().items() if k not in ("password", ENTERPRISE)}
    bare["schemas"] = [USER]
    assert plan.apply(bare) is bare
    stored = document()
    projected = plan.apply(stored)  # the password goes: a copy without it
    assert "password" not in projected and "password" in stored
