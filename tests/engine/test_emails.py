"""E-mail addresses: the shortcut for plain addresses gives exactly what pydantic's ``EmailStr``
(email_validator) gives, and the API validates ``emails.value`` as before."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, EmailStr, ValidationError
from pydantic.networks import validate_email
from pydantic_core import PydanticCustomError

from scim.emails import _PLAIN, EmailAddress, normalised, plain
from tests.engine.conftest import create_user, user_body


def reference(address: str) -> str | None:
    """What pydantic's EmailStr makes of ``address``; None when it refuses it."""
    try:
        return validate_email(address)[1]
    except PydanticCustomError:
        return None


def ours(address: str) -> str | None:
    try:
        return normalised(address)
    except PydanticCustomError:
        return None


EXAMPLES = [
    "anna.ek@stockholm.se",
    "Anna.Ek@stockholm.se",
    "anna.ek@Stockholm.SE",  # the domain is folded to lower case
    "Postmaster@stockholm.se",  # RFC 2142 names are folded too
    "anna@sub.kommun.se",
    "o'brien+tag@example.com",
    "a@b.co",
    "anna@localhost",
    "anna@intranet",
    "anna@kommun.local",
    "anna@printer.test",
    "anna@10.in-addr.arpa",
    "anna@ab--cd.se",
    "anna@xn--gteborg-90a.se",
    "anna@göteborg.se",
    "åsa@kommun.se",
    "anna@kommun.s3",
    "anna@kommun.se.",
    ".anna@kommun.se",
    "an..na@kommun.se",
    "anna@-kommun.se",
    "anna@kommun-.se",
    '"anna ek"@kommun.se',
    "Anna Ek <anna@kommun.se>",
    " anna@kommun.se ",
    "anna@kommun.se\n",
    "anna@[127.0.0.1]",
    "anna",
    "@kommun.se",
    "anna@",
    "a" * 64 + "@kommun.se",
    "a" * 65 + "@kommun.se",
    "anna@" + "k" * 63 + ".se",
    "anna@" + "k" * 64 + ".se",
    "a" * 60 + "@" + ".".join(["k" * 60] * 3) + ".se",
    "a" * 64 + "@" + ".".join(["k" * 61] * 3) + ".se",  # 253 characters
    "a" * 64 + "@" + ".".join(["k" * 62] * 3) + ".se",  # 256: too long
]


@pytest.mark.parametrize("address", EXAMPLES)
def test_the_shortcut_agrees_with_email_validator(address: str) -> None:
    assert ours(address) == reference(address)


ATOM = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,24}", fullmatch=True)
LABEL = st.one_of(
    st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["xn--gteborg-90a", "ab--cd", "test", "local", "arpa", "invalid", "k" * 63]),
)
LOCAL = st.one_of(
    st.lists(ATOM, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["Postmaster", "ABUSE", "info", "a" * 64, "a" * 65]),
)
TOP = st.one_of(
    st.from_regex(r"[a-z]{2,63}", fullmatch=True), st.sampled_from(["test", "local", "onion"])
)
PLAIN_LOOKING = st.builds(
    lambda local, labels, top: f"{local}@{'.'.join([*labels, top])}",
    LOCAL,
    st.lists(LABEL, min_size=1, max_size=4),
    TOP,
)


@given(PLAIN_LOOKING)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_every_plain_address_is_accepted_unchanged_by_email_validator(address: str) -> None:
    if plain(address):
        assert _PLAIN.fullmatch(address)
        assert reference(address) == address
    else:
        assert ours(address) == reference(address)


ADDRESS_CHARACTERS = st.sampled_from([*"abcAB09.-_+'@åöx", "--", "xn--", ".se", ".test"])


@given(st.lists(ADDRESS_CHARACTERS, max_size=24).map("".join))
@settings(max_examples=500)
def test_any_address_gets_what_email_validator_gives(address: str) -> None:
    assert ours(address) == reference(address)


def test_the_type_validates_as_email_str() -> None:
    class Ours(BaseModel):
        value: EmailAddress

    class Theirs(BaseModel):
        value: EmailStr

    assert Ours(value="Anna@Kommun.SE").value == Theirs(value="Anna@Kommun.SE").value
    with pytest.raises(ValidationError, match="not a valid email address"):
        Ours(value="anna@kommun..se")
    assert Ours.model_json_schema()["properties"]["value"] == {
        **Theirs.model_json_schema()["properties"]["value"],
        "title": "Value",
    }


async def test_the_api_refuses_an_invalid_address(client: httpx.AsyncClient) -> None:
    body = user_body("anna", emails=[{"value": "anna@kommun..se", "type": "work"}])
    response = await client.post("/Users", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["scimType"] == "invalidValue"
    assert "emails" in error["detail"] and "email address" in error["detail"]
    assert (await client.get("/Users", params={"filter": 'userName eq "anna"'})).json()[
        "totalResults"
    ] == 0


async def test_the_api_stores_addresses_as_email_validator_normalises_them(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(
        client,
        "anna",
        emails=[
            {"value": "Anna.Ek@Stockholm.SE", "type": "work"},
            {"value": "anna.ek@privat.se", "type": "home"},
        ],
    )
    stored = (await client.get(f"/Users/{user['id']}")).json()
    assert [email["value"] for email in stored["emails"]] == [
        "Anna.Ek@stockholm.se",
        "anna.ek@privat.se",
    ]


@pytest.mark.parametrize(
    "address",
    ["isaac.brock@okta.local", "anna@intranet", "anna@printer.test", "anna@localhost"],
)
async def test_addresses_on_dotless_and_special_use_domains_are_taken(
    client: httpx.AsyncClient, address: str
) -> None:
    """Directories hold them (Okta's examples use okta.local); RFC 5322 syntax is what counts."""
    body = user_body(address, emails=[{"value": address, "type": "work", "primary": True}])
    response = await client.post("/Users", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["emails"][0]["value"] == address
