"""A SearchRequest of a shape seen before (``scim.protocol.searches``) is what validating it
from the start makes of it: the same request, the same filter tree, the same refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scim2_models import Context, InvalidFilterException, SearchRequest
from scim2_models.path import filter as scim_filter
from scim2_models.path import grammar

from scim.hooks import Domain
from scim.protocol.searches import Search, Searches
from scim.registry import Registry
from scim.settings import Settings
from tests.conftest import ENTERPRISE

REGISTRY = Registry(Settings(), Domain())
USER = REGISTRY.by_name["User"].model
ANY = USER | REGISTRY.by_name["Group"].model

# Shapes identity systems and the client send, and some they should not; "{}" is a literal.
SHAPES = [
    "userName eq {}",
    "USERNAME Eq {}",
    "externalId eq {}",
    "name.familyName co {}",
    "name.familyName co {} or name.givenName co {} or userName co {} or displayName co {}",
    'emails[type eq "work"].value eq {}',
    "emails[type eq {} and value co {}]",
    "not (userName sw {}) and active eq true",
    f"{ENTERPRISE}:employeeNumber eq {{}}",
    f"{ENTERPRISE}:manager.value eq {{}}",
    "meta.lastModified gt {}",
    "meta.lastModified gt {} and userName ew {}",
    "title pr and (nickName eq {} or nickName eq null)",
    "displayName eq {}",
    "members[value eq {}]",
    "active eq {}",
    "nosuchattribute eq {}",
    "userName zz {}",
    "userName eq {} extra",
    "emails[type eq {}",
]
VALUES = [
    "bjensen",
    "Åsa.Öberg@kommun.se",
    'x" or userName pr or "',
    "quote \\ backslash",
    "\ue0001\ue000",
    "",
    "2011-05-13T04:42:34Z",
    "not a date",
    "true",
    "\u212a",  # Kelvin sign, folds to k
]


def _filter(shape: str, values: list[str]) -> str:
    literals = iter(values)
    return (
        shape.replace("{}", "\0")
        .replace("\0", "{}")
        .format(*(json.dumps(next(literals)) for _ in range(shape.count("{}"))))
    )


def _outcome(validate: Any, model: Any, payload: dict[str, Any]) -> Any:
    try:
        request = validate(model, payload)
        if isinstance(request, Search):
            request = request.request
    except ValidationError as error:
        return ("refused", [(e["type"], e["msg"]) for e in error.errors()])
    dumped = request.model_dump(scim_ctx=Context.SEARCH_REQUEST)
    return ("taken", dumped, request.filter.ast if request.filter is not None else None)


def _from_the_start(model: Any, payload: dict[str, Any]) -> SearchRequest[Any]:
    return SearchRequest[model].model_validate(payload, scim_ctx=Context.SEARCH_REQUEST)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("model", [USER, ANY], ids=["Users", "root"])
def test_each_request_of_a_shape_is_validated_as_from_the_start(shape: str, model: Any) -> None:
    searches = Searches()
    others = {"startIndex": "1", "count": "100", "attributes": ["userName", "emails"]}
    for value in VALUES * 2:
        values = [value, *VALUES][: shape.count("{}")]
        payload = {"filter": _filter(shape, values), **others}
        assert _outcome(searches.validate, model, payload) == _outcome(
            _from_the_start, model, payload
        ), payload["filter"]


@settings(max_examples=300, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    values=st.lists(st.text(), min_size=4, max_size=4),
)
def test_any_literal_is_put_back_as_the_grammar_reads_it(shape: str, values: list[str]) -> None:
    searches = Searches()
    payload = {"filter": _filter(shape, values)}
    for _ in range(3):
        assert _outcome(searches.validate, USER, payload) == _outcome(
            _from_the_start, USER, payload
        )


@pytest.mark.parametrize(
    "others",
    [
        {"sortBy": {"attribute": "userName"}},
        {"attributes": [{"name": "userName"}]},
        {"attributes": [["userName"]]},
        {"count": 10, "startIndex": 2.5},
        {"excludedAttributes": None},
    ],
)
def test_a_body_of_any_json_is_validated_as_from_the_start(others: dict[str, Any]) -> None:
    """A SearchRequest body may hold objects and arrays where a query holds text."""
    searches = Searches()
    for name in ("bjensen", "jsmith", "asa"):
        payload = {"filter": f'userName eq "{name}"', **others}
        assert _outcome(searches.validate, USER, payload) == _outcome(
            _from_the_start, USER, payload
        )


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The filters scim2-models' grammar parses while the test runs (its cache emptied)."""
    texts: list[str] = []
    parse = grammar._PARSER.parse
    monkeypatch.setattr(
        grammar._PARSER, "parse", lambda text, **kw: (texts.append(text), parse(text, **kw))[1]
    )
    grammar._cached_filter.cache_clear()
    return texts


def test_a_shape_seen_before_is_not_parsed_again(parsed: list[str]) -> None:
    searches = Searches()
    for n in range(5):
        request = searches.validate(USER, {"filter": f'userName eq "user{n}@kommun.se"'}).request
        assert str(request.filter) == f'userName eq "user{n}@kommun.se"'
        assert request.filter is not None and request.filter.ast.value == f"user{n}@kommun.se"
    # The first request from the start, the second's shape (its literal a mark), no more.
    assert len(parsed) == 2, parsed


def test_a_shape_in_use_outlasts_a_flood_of_others(parsed: list[str]) -> None:
    """The least recently used shape goes first: one-off searches, however many, do not push
    out the shape an identity system keeps asking."""
    searches = Searches()
    attributes = ("title", "nickName", "locale", "timezone", "profileUrl", "userType")
    attributes += ("preferredLanguage", "displayName", "externalId", "active")
    for n in range(1, 1001):
        if n % 100 == 1:
            searches.validate(USER, {"filter": f'userName eq "user{n}@kommun.se"'})
        present = [f"{name} pr" for i, name in enumerate(attributes) if n >> i & 1]
        searches.validate(USER, {"filter": " and ".join(present)})  # a shape of its own
    # The first request from the start, the second's shape; then none, flood or not.
    assert len([text for text in parsed if text.startswith("userName eq")]) == 2


def test_a_value_is_checked_though_its_shape_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value its attribute cannot take is refused in a shape seen before, as from the start
    (scim2-models checks values by type: a string attribute takes any string, the marks
    too, so a check only some strings fail is made up here)."""
    coerce = scim_filter.coerce_value

    def strict(resolved: Any, value: Any, op: Any = None) -> Any:
        if value == "forbidden":
            raise InvalidFilterException(detail="value 'forbidden' is not valid")
        return coerce(resolved, value, op)

    monkeypatch.setattr(scim_filter, "coerce_value", strict)
    searches = Searches()
    for name in ("bjensen", "jsmith", "forbidden"):
        payload = {"filter": f'userName eq "{name}"'}
        assert _outcome(searches.validate, USER, payload) == _outcome(
            _from_the_start, USER, payload
        )
    assert _outcome(searches.validate, USER, payload)[0] == "refused"


def test_a_body_with_long_lists_is_not_a_shape_kept(parsed: list[str]) -> None:
    """A SearchRequest body may list many attributes: such a shape is validated whole each
    time, not kept (512 of them would hold memory no identity system's query needs)."""
    searches = Searches()
    for many in (3, 600):
        parsed.clear()
        for n in range(4):
            name = f"user{many}.{n}"
            payload = {"filter": f'userName eq "{name}"', "attributes": ["userName"] * many}
            request = searches.validate(USER, payload).request
            assert request.filter is not None and request.filter.ast.value == name
        assert len([text for text in parsed if text.startswith("userName eq")]) == (
            2 if many == 3 else 4
        ), many


UNFILTERED = [
    {},
    {"startIndex": "101", "count": "100"},
    {"sortBy": "name.familyName", "sortOrder": "descending", "count": "100"},
    {"sortBy": "emails.value", "attributes": ["userName", "emails"]},
    {"excludedAttributes": ["groups"], "startIndex": "0", "count": "-5"},
    {"sortBy": "nosuchattribute"},
    {"count": "many"},
    {"sortOrder": "sideways"},
    {"cursor": "", "count": "10"},
    {"attributes": [{"name": "userName"}]},
]


@pytest.mark.parametrize("payload", UNFILTERED)
@pytest.mark.parametrize("model", [USER, ANY], ids=["Users", "root"])
def test_a_request_without_a_filter_is_validated_as_from_the_start(
    payload: dict[str, Any], model: Any
) -> None:
    searches = Searches()
    for _ in range(3):
        assert _outcome(searches.validate, model, payload) == _outcome(
            _from_the_start, model, payload
        ), payload


def test_a_request_without_a_filter_asked_again_is_the_one_validated_before() -> None:
    searches = Searches()
    page = {"sortBy": "name.familyName", "startIndex": "101", "count": "100"}
    first, second, third = (searches.validate(USER, dict(page)).request for _ in range(3))
    assert second is third  # kept once asked twice; a request asked once is not kept
    assert first is not second and first == second
    assert searches.validate(USER, {**page, "startIndex": "201"}).request.start_index == 201
    assert searches.validate(ANY, page).request is not third  # another model, another request
