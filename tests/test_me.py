"""/Me (RFC 7644 §3.11): a person who is a user of an organisation signs in with their
certificate and reads their own resource, with what they may use now; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.operator import Operator
from scim.settings import Settings
from scim.storage.tables import administrators
from tests.conftest import (
    ESERVICES,
    ESERVICES_GROUP,
    GROUP_SCHEMA,
    SCIM,
    STATLIG,
    Organisations,
    api_client,
    create_user,
    patch_body,
)
from tests.pki import Authority, Issued

PROXY = ("10.4.4.4", 443)
GRUND = f"{STATLIG}:grundersattning"
HEMTJANST = f"{STATLIG}:hemtjanst-for-nyanlanda"
ROOT = Authority("Me Test Root")
ISSUING = Authority("Me Test Issuing CA", ROOT)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("me") / "ca.pem"
    path.write_bytes(ROOT.pem + ISSUING.pem)
    return path


@pytest.fixture(scope="module")
async def cert_app(database_url: str, engine: AsyncEngine, bundle: Path) -> AsyncIterator[Litestar]:
    app = create_app(
        Settings(database_url=database_url, ca_bundle=str(bundle), trusted_proxies=(PROXY[0],))
    )
    yield app
    await app.state.engine.dispose()


def signed_in(app: Litestar, certificate: Issued) -> httpx.AsyncClient:
    """A person's certificate, forwarded by the trusted proxy as nginx does."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=PROXY),
        base_url="http://scim.test/scim/v2",
        headers={
            "Content-Type": SCIM,
            "X-SSL-Client-Cert": quote(certificate.pem.decode()),
        },
    )


def card(hsa_id: str, organisation: str) -> Issued:
    return ISSUING.issue(f"Person {hsa_id}", hsa_id=hsa_id, organisation=organisation)


async def enrol(client: httpx.AsyncClient, hsa_id: str, *values: str) -> dict[str, Any]:
    extension = {"hsaId": hsa_id, "permissions": [{"value": value} for value in values]}
    return await create_user(
        client,
        f"{hsa_id.lower()}@example.se",
        name={"givenName": "Maja", "familyName": "Ek"},
        emails=[{"value": "maja.ek@stockholm.se", "type": "work"}],
        **{ESERVICES: extension},
    )


async def test_a_user_reads_their_name_hsa_id_email_and_effective_permissions(
    client: httpx.AsyncClient, cert_app: Litestar
) -> None:
    maja = await enrol(client, "SE2120000142-ME01", GRUND)
    team = await client.post(
        "/Groups",
        json={
            "schemas": [GROUP_SCHEMA, ESERVICES_GROUP],
            "displayName": "Team",
            "members": [{"value": maja["id"]}],
            ESERVICES_GROUP: {"permissions": [{"value": HEMTJANST}]},
        },
    )
    assert team.status_code == 201
    async with signed_in(cert_app, card("SE2120000142-ME01", "Stockholms stad")) as me:
        response = await me.get("/Me")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == maja["id"]
    assert response.headers["content-location"] == body["meta"]["location"]
    assert response.headers["etag"] == body["meta"]["version"]
    assert body["name"] == {"givenName": "Maja", "familyName": "Ek"}
    assert body["emails"][0]["value"] == "maja.ek@stockholm.se"
    assert body[ESERVICES]["hsaId"] == "SE2120000142-ME01"
    assert body[ESERVICES]["effectivePermissions"] == [
        {"value": GRUND, "service": STATLIG, "display": "Grundersättning", "source": "direct"},
        {
            "value": HEMTJANST,
            "service": STATLIG,
            "display": "Hemtjänst för nyanlända",
            "source": team.json()["id"],
        },
    ]


async def test_a_user_reaches_nothing_else(client: httpx.AsyncClient, cert_app: Litestar) -> None:
    maja = await enrol(client, "SE2120000142-ME02")
    other = await enrol(client, "SE2120000142-ME03")
    async with signed_in(cert_app, card("SE2120000142-ME02", "Stockholms stad")) as me:
        for method, path, body in (
            ("GET", "/Users", None),
            ("GET", f"/Users/{maja['id']}", None),
            ("GET", f"/Users/{other['id']}", None),
            ("POST", "/Users", {"userName": "x"}),
            (
                "PATCH",
                f"/Users/{maja['id']}",
                patch_body({"op": "add", "path": "title", "value": "x"}),
            ),
            ("DELETE", f"/Users/{other['id']}", None),
            ("GET", "/Groups", None),
            ("POST", "/.search", {}),
            ("POST", "/Bulk", {}),
            ("PATCH", "/Me", patch_body({"op": "add", "path": "title", "value": "x"})),
            ("PUT", "/Me", {"userName": "x"}),
            ("DELETE", "/Me", None),
        ):
            response = await me.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["status"] == "403"
        catalogue = await me.get("http://scim.test/catalogue")
        assert catalogue.status_code == 403
    assert (await client.get(f"/Users/{other['id']}")).status_code == 200
    assert "title" not in (await client.get(f"/Users/{maja['id']}")).json()


async def test_the_certificate_organisation_picks_among_several(
    app: Litestar,
    client: httpx.AsyncClient,
    cert_app: Litestar,
    organisations: Organisations,
) -> None:
    """The same person is a user in Stockholm and in Göteborg."""
    hsa_id = "SE2120000142-ME04"
    in_stockholm = await enrol(client, hsa_id)
    async with api_client(app, organisations.goteborg.token) as goteborg:
        in_goteborg = await enrol(goteborg, hsa_id)
    for organisation, expected in (
        ("Stockholms stad", in_stockholm["id"]),
        ("Göteborgs stad", in_goteborg["id"]),
    ):
        async with signed_in(cert_app, card(hsa_id, organisation)) as me:
            assert (await me.get("/Me")).json()["id"] == expected
    async with signed_in(cert_app, card(hsa_id, "Malmö stad")) as me:
        refused = await me.get("/Me")
    assert refused.status_code == 401
    assert "several organisations" in refused.json()["detail"]


async def test_unknown_people_and_wrong_organisations_are_refused(
    client: httpx.AsyncClient, cert_app: Litestar
) -> None:
    await enrol(client, "SE2120000142-ME05")
    async with signed_in(cert_app, card("SE2120000142-ME99", "Stockholms stad")) as me:
        assert (await me.get("/Me")).status_code == 401
    async with signed_in(cert_app, card("SE2120000142-ME05", "Göteborgs stad")) as me:
        response = await me.get("/Me")
    assert response.status_code == 401
    assert "not the registered organisation" in response.json()["detail"]


@pytest.mark.parametrize(
    "organisation", [None, ("Stockholms stad", "Göteborgs stad")], ids=["no-O", "two-O"]
)
async def test_a_certificate_must_name_exactly_one_organisation(
    client: httpx.AsyncClient,
    cert_app: Litestar,
    engine: AsyncEngine,
    organisations: Organisations,
    organisation: tuple[str, ...] | None,
) -> None:
    """Without one O, the organisation of the registration cannot be checked: a user of
    another organisation, or an administrator, is not let in on the serialNumber alone."""
    await enrol(client, "SE2120000142-ME06")
    person = ISSUING.issue("Person", hsa_id="SE2120000142-ME06", organisation=organisation)
    async with signed_in(cert_app, person) as me:
        response = await me.get("/Me")
    assert response.status_code == 401, response.text
    assert "organisation" in response.json()["detail"]
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.goteborg.org_number)
        await operator.add_administrator(tenant, "SE2120001355-MEADM", "Ada", "Admin", "a@b.se")
    admin = ISSUING.issue("Ada Admin", hsa_id="SE2120001355-MEADM", organisation=organisation)
    try:
        async with signed_in(cert_app, admin) as signed:
            assert (await signed.get("/Users")).status_code == 401
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                delete(administrators).where(administrators.c.hsa_id == "SE2120001355-MEADM")
            )


async def test_me_is_404_for_administrators(
    cert_app: Litestar, engine: AsyncEngine, organisations: Organisations, clean: None
) -> None:
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(organisations.stockholm.org_number)
        await operator.add_administrator(tenant, "SE2120000142-MEADM", "Ada", "Admin", "a@b.se")
    try:
        async with signed_in(cert_app, card("SE2120000142-MEADM", "Stockholms stad")) as admin:
            assert (await admin.get("/Me")).status_code == 404
            assert (await admin.get("/Users")).status_code == 200
    finally:
        async with engine.begin() as connection:
            operator = Operator(connection, "tests")
            tenant = await operator.tenant(organisations.stockholm.org_number)
            await operator.add_administrator(tenant, "SE2120000142-MEAD2", "Bo", "B", "b@b.se")
            await operator.remove_administrator(tenant, "SE2120000142-MEADM")
