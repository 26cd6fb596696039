"""A search's statement is kept per shape (``scim.storage.kept``): built once for all the
requests that differ from it only in their values, which each request gives its own."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import ColumnElement, literal, or_

from scim.recent import Recent
from scim.storage import filters, kept
from scim.storage.tables import resources
from tests.conftest import Organisations, api_client, captured, through_the_cursor
from tests.engine.conftest import create_user


def test_conditions_that_differ_only_in_their_values_have_one_shape() -> None:
    first = kept.shape(resources.c.user_name_key == "anna")
    second = kept.shape(resources.c.user_name_key == "bertil")
    assert first is not None and second is not None
    assert first.key == second.key
    assert first.values == {"v0": "anna"}
    assert second.values == {"v0": "bertil"}


def test_structure_and_value_types_make_other_shapes() -> None:
    column = resources.c.user_name_key
    shapes = [
        kept.shape(condition)
        for condition in (
            column == "anna",
            column != "anna",
            resources.c.display_name_key == "anna",
            resources.c.version == 3,
            (column == "anna") & (resources.c.version == 3),
            (column == "anna") | (resources.c.version == 3),
            column.is_(None),
        )
    ]
    keys = [shape.key for shape in shapes if shape is not None]
    assert len(keys) == len(shapes) and len(set(keys)) == len(keys)
    # An absent element is part of the shape too: no sort key is not an empty one.
    assert kept.shape(column == "a", None) != kept.shape(None, column == "a")


def test_a_parameter_shared_by_two_elements_is_named_once() -> None:
    """A cursor's condition holds the sort key itself: the key's value is one parameter."""
    key = resources.c.family_name_sort + literal("x")
    after = key > "m"
    found = kept.shape(after, key)
    assert found is not None
    assert found.values == {"v0": "x", "v1": "m"}
    assert str(found.named(after).compile()).count(":v") == 2
    assert ":v0" in str(found.named(key).compile())


def test_a_construct_sqlalchemy_cannot_key_has_no_shape() -> None:
    class Uncached(ColumnElement[bool]):
        inherit_cache = False

    assert kept.shape(Uncached()) is None


def test_too_many_values_are_not_kept() -> None:
    """A shape of more values than an identity system's query holds would keep a large
    statement in memory for what is most likely one request."""
    many = or_(*(resources.c.version == n for n in range(kept.MAX_VALUES + 1)))
    assert kept.shape(many) is None
    assert kept.shape(or_(*(resources.c.version == n for n in range(kept.MAX_VALUES)))) is not None


def test_kept_forgets_the_least_recently_used() -> None:
    statements = Recent(size=2)
    built: list[str] = []

    def build(name: str) -> Any:
        return lambda: built.append(name) or name

    assert statements.get("a", build("a")) == "a"
    assert statements.get("b", build("b")) == "b"
    assert statements.get("a", build("a again")) == "a"
    assert statements.get("c", build("c")) == "c"  # forgets b, the least recently used
    assert statements.get("b", build("b again")) == "b again"
    assert built == ["a", "b", "c", "b again"]


def test_what_was_made_is_kept_even_when_it_is_none() -> None:
    """A search shape that cannot be compiled once is remembered as such (None), not tried
    again for every request of it."""
    made = Recent(size=2)
    tries: list[str] = []
    for _ in range(3):
        assert made.get("a", lambda: tries.append("a")) is None
    assert tries == ["a"]


async def test_searches_of_one_shape_each_answer_for_their_own_values(
    client: httpx.AsyncClient,
) -> None:
    """One kept statement, many values: each search finds its own user and counts its own
    matches, whichever search of that shape came first."""
    tag = uuid.uuid4().hex[:8]
    users = [
        await create_user(
            client, f"kept{n}.{tag}@example.se", name={"familyName": f"Kept{n}", "givenName": tag}
        )
        for n in range(4)
    ]
    for n, user in enumerate(users):
        found = await client.get("/Users", params={"filter": f'userName eq "{user["userName"]}"'})
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["Resources"]] == [user["id"]], n
    for n in range(4):
        # One shape, four values: each matches n+1 of the four, counted (count=1 asks for
        # the count query) by the kept count with its own value.
        query = f'name.givenName eq "{tag}" and name.familyName le "Kept{n}"'
        page = await client.get("/Users", params={"filter": query, "count": 1})
        assert page.status_code == 200, page.text
        assert page.json()["totalResults"] == n + 1


async def test_an_organisation_sees_only_its_own_through_a_kept_statement(
    app: Litestar, client: httpx.AsyncClient, organisations: Organisations
) -> None:
    """The organisation is a parameter of every kept statement, never a value kept in it."""
    tag = uuid.uuid4().hex[:8]
    mine = await create_user(client, f"own.{tag}@example.se")
    async with api_client(app, organisations.goteborg.token) as goteborg:
        query = {"filter": f'userName sw "own.{tag}" or userName eq "{mine["userName"]}"'}
        theirs = await goteborg.get("/Users", params=query)
        ours = await client.get("/Users", params=query)
        theirs_again = await goteborg.get("/Users", params=query)
    assert theirs.status_code == ours.status_code == theirs_again.status_code == 200
    assert [r["id"] for r in ours.json()["Resources"]] == [mine["id"]]
    assert theirs.json()["totalResults"] == theirs_again.json()["totalResults"] == 0


async def test_a_kept_search_is_sent_by_the_driver_and_answers_what_sqlalchemy_does(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A kept page goes to the driver itself (``scim.storage.direct``): its answer is the one
    SQLAlchemy's execution gives, which a statement listener brings back."""
    tag = uuid.uuid4().hex[:8]
    for n in range(3):
        await create_user(client, f"same{n}.{tag}@example.se", name={"familyName": tag})
    queries: list[dict[str, Any]] = [
        {"filter": f'name.familyName eq "{tag}"', "sortBy": "userName", "count": 2},
        {"filter": f'name.familyName eq "{tag}" and meta.lastModified gt "2020-01-01T00:00:00Z"'},
        {"filter": f'emails[type eq "work"] or name.familyName eq "{tag}"', "startIndex": 2},
        {"filter": f'name.familyName eq "{tag}"', "sortBy": "meta.created", "cursor": ""},
    ]
    direct_answers = []
    with through_the_cursor(app.state.engine) as executed:
        for query in queries:
            response = await client.get("/Users", params=query)
            assert response.status_code == 200, response.text
            direct_answers.append(response.json())
    assert not [s for s in executed if "FROM resources" in s], executed
    with captured(app.state.service.read_engine) as heard:
        for query, answer in zip(queries, direct_answers, strict=True):
            response = await client.get("/Users", params=query)
            assert response.json() == answer
    assert heard


async def test_a_page_without_a_filter_asked_again_is_built_once(
    app: Litestar,
    client: httpx.AsyncClient,
    organisations: Organisations,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sorted page of a list, asked again, takes the statement built for it before (its
    sort key compiled once), with each organisation's own rows and total."""
    users = [
        await create_user(client, f"sorted{n}@example.se", name={"familyName": f"S{2 - n}"})
        for n in range(3)
    ]
    compiled: list[Any] = []
    sort_key = filters.sort_key
    monkeypatch.setattr(
        filters, "sort_key", lambda *args: (compiled.append(args[2]), sort_key(*args))[1]
    )
    params = {"sortBy": "name.familyName", "count": 2, "startIndex": 2}
    async with api_client(app, organisations.goteborg.token) as goteborg:
        await create_user(goteborg, "theirs@example.se", name={"familyName": "S9"})
        for caller, expected in [(client, 3), (goteborg, 1)] * 3:
            page = await caller.get("/Users", params=params)
            assert page.status_code == 200, page.text
            assert page.json()["totalResults"] == expected
            ids = [r["id"] for r in page.json()["Resources"]]
            assert ids == ([users[1]["id"], users[0]["id"]] if expected == 3 else [])
    # Validated from the start once, then compiled once: asked six times.
    assert len(compiled) == 2, compiled
