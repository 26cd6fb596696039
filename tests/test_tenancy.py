"""Tenancy: no caller reads or changes another organisation's data, and bad credentials get
nowhere.

Every way in is exercised for every organisation: an identity system by bearer token, an
identity system by client certificate (registered by HSA-id, or pinned by fingerprint) and an
administrator by client certificate. Certificates arrive as a TLS-terminating proxy forwards
them (nginx's escaped PEM, RFC 9440 ``Client-Cert``) to an app that trusts that proxy.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.auth.tokens import token_hash
from scim.operator import Operator
from scim.settings import Settings
from scim.storage import audit
from scim.storage.tables import audit_log, members, resources, tokens
from tests.conftest import (
    GROUP_SCHEMA,
    SCIM,
    SEARCH_SCHEMA,
    USER_SCHEMA,
    Organisation,
    Organisations,
    api_client,
    patch_body,
    user_body,
)
from tests.pki import Authority, Issued

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
BASE = "http://scim.test/scim/v2"
TRUSTED_PROXY = ("10.1.1.1", 4000)
UNTRUSTED_PEER = ("10.2.2.2", 1)
ORGS = ("stockholm", "goteborg", "region")
USER_PASSWORD_URN = f"{USER_SCHEMA}:password"

# What every organisation's data has in common: the same userName and externalId in different
# organisations is allowed, and must never make one organisation's user visible to another.
SHARED_USER = "anna.ek@example.se"
SHARED_EXTERNAL_ID = "hr-1"
SHARED_GROUP = "Behöriga"


# -- the PKI, the certificate-aware app, registrations ------------------------------------


@dataclass(frozen=True)
class Pki:
    root: Authority
    issuing: Authority
    bundle: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = Authority("Tenancy Test Root CA")
    issuing = Authority("Tenancy Test Issuing CA", root)
    bundle = tmp_path_factory.mktemp("tenancy-pki") / "ca-bundle.pem"
    bundle.write_bytes(root.pem + issuing.pem)
    return Pki(root, issuing, bundle)


@pytest.fixture(scope="module")
async def cert_app(database_url: str, engine: AsyncEngine, pki: Pki) -> AsyncIterator[Litestar]:
    """The app behind a TLS-terminating proxy at 10.1.1.1, trusting the test PKI."""
    app = create_app(
        Settings(
            database_url=database_url,
            ca_bundle=str(pki.bundle),
            trusted_proxies=("10.1.1.1",),
        )
    )
    yield app
    await app.state.engine.dispose()


@dataclass(frozen=True)
class Registered:
    """One organisation and every way its callers come in."""

    key: str
    organisation: Organisation
    token_client: str  # the system client of organisation.token
    admin_hsa: str
    admin: Issued
    system_hsa: str
    system_client: str  # registered by HSA-id
    system: Issued
    pinned_client: str  # registered by the fingerprint of its certificate
    pinned: Issued


@pytest.fixture(scope="module")
async def registered(
    engine: AsyncEngine, organisations: Organisations, pki: Pki
) -> dict[str, Registered]:
    made: dict[str, Registered] = {}
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        for index, key in enumerate(ORGS):
            organisation: Organisation = getattr(organisations, key)
            tenant = await operator.tenant(organisation.org_number)
            admin_hsa = f"SE{organisation.org_number}-TENADM{index}"
            system_hsa = f"SE{organisation.org_number}-TENSYS{index}"
            await operator.add_administrator(
                tenant, admin_hsa, "Tenna", f"Admin{index}", f"admin{index}@example.se"
            )
            system = pki.issuing.issue(
                f"IdP {organisation.name}", hsa_id=system_hsa, organisation=organisation.name
            )
            system_client = await operator.register_client(
                tenant, f"IdP by HSA-id {key}", hsa_id=system_hsa
            )
            # A function certificate with no HSA-id, known only by its fingerprint.
            pinned = pki.issuing.issue(f"Pinned IdP {index}", organisation=organisation.name)
            pinned_client = await operator.register_client(
                tenant, f"IdP by fingerprint {key}", fingerprint=pinned.fingerprint
            )
            token_client = (
                await connection.execute(
                    select(tokens.c.client_id).where(
                        tokens.c.token_hash == token_hash(organisation.token)
                    )
                )
            ).scalar_one()
            made[key] = Registered(
                key=key,
                organisation=organisation,
                token_client=token_client,
                admin_hsa=admin_hsa,
                admin=pki.issuing.issue(
                    f"Tenna Admin{index}", hsa_id=admin_hsa, organisation=organisation.name
                ),
                system_hsa=system_hsa,
                system_client=system_client,
                system=system,
                pinned_client=pinned_client,
                pinned=pinned,
            )
    return made


# -- clients ------------------------------------------------------------------------------

HEADERS = {"Content-Type": SCIM, "Accept": SCIM}


def certificate_headers(issued: Issued, form: str) -> dict[str, str]:
    """The leaf as a proxy forwards it: nginx's ``$ssl_client_escaped_cert`` or RFC 9440."""
    if form == "nginx":
        return {"X-SSL-Client-Cert": quote(issued.pem.decode())}
    der = issued.certificate.public_bytes(Encoding.DER)
    headers = {"Client-Cert": f":{base64.b64encode(der).decode()}:"}
    if issued.chain:
        headers["Client-Cert-Chain"] = ", ".join(
            f":{base64.b64encode(c.public_bytes(Encoding.DER)).decode()}:" for c in issued.chain
        )
    return headers


def peer_client(
    app: Litestar, headers: dict[str, str], peer: tuple[str, int] = TRUSTED_PROXY
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=peer),
        base_url=BASE,
        headers={**HEADERS, **headers},
    )


@dataclass(frozen=True)
class Way:
    """How a caller comes in: ``role`` is token, system-hsa, system-fingerprint or
    administrator; ``form`` is how a proxy forwards a certificate."""

    role: str
    form: str | None = None

    def __str__(self) -> str:
        return self.role + (f"-{self.form}" if self.form else "")

    def client(self, app: Litestar, cert_app: Litestar, who: Registered) -> httpx.AsyncClient:
        if self.role == "token":
            return api_client(app, who.organisation.token)
        issued = {
            "system-hsa": who.system,
            "system-fingerprint": who.pinned,
            "administrator": who.admin,
        }
        assert self.form is not None
        return peer_client(cert_app, certificate_headers(issued[self.role], self.form))

    def actor(self, who: Registered) -> str:
        return {
            "token": f"client:{who.token_client}",
            "system-hsa": f"client:{who.system_client}",
            "system-fingerprint": f"client:{who.pinned_client}",
            "administrator": who.admin_hsa,
        }[self.role]


ROLES = ("token", "system-hsa", "system-fingerprint", "administrator")
FORMS = ("nginx", "rfc9440")
# Every role for every organisation; certificates alternate between the two forwarded forms,
# so that each role comes in both ways across the organisations.
CALLERS = [
    pytest.param(
        Way(role, None if role == "token" else FORMS[(ROLES.index(role) + index) % 2]),
        org,
        id=f"{role}-{org}",
    )
    for role in ROLES
    for index, org in enumerate(ORGS)
]


# -- helpers ------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body = response.json()
    assert ERROR in body["schemas"], body
    assert body["status"] == str(status), body
    assert body["detail"], body
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body


def assert_refused(response: httpx.Response) -> None:
    """401 with a SCIM error and a challenge; nothing that would log anyone in."""
    assert_error(response, 401)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert "set-cookie" not in response.headers
    assert "Resources" not in response.json()


def listed_ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    found = {resource["id"] for resource in body.get("Resources", [])}
    assert body["totalResults"] == len(found), body
    return found


def assert_empty(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["totalResults"] == 0, body
    assert body.get("Resources", []) == [], body


class Probe:
    """Requests as one caller. No response may mention an id in ``forbidden``, except that an
    error may repeat the id the request itself named."""

    def __init__(self, client: httpx.AsyncClient, forbidden: set[str]) -> None:
        self.client = client
        self.forbidden = forbidden

    async def __call__(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        response = await self.client.request(method, url, json=json_body, params=params)
        seen = response.text + " ".join(response.headers.values())
        sent = url + json.dumps(params) + json.dumps(json_body, ensure_ascii=False)
        leaked = {i for i in self.forbidden if i in seen and (response.is_success or i not in sent)}
        assert not leaked, f"{method} {url} {params} answered with foreign ids {leaked}: {seen}"
        return response


async def snapshot(engine: AsyncEngine) -> tuple[Any, ...]:
    """Everything a write could change: resources, memberships, the audit log."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    resources.c.id,
                    resources.c.tenant_id,
                    resources.c.version,
                    resources.c.last_modified,
                    resources.c.data,
                )
            )
        ).all()
        memberships = (
            await connection.execute(select(members.c.group_id, members.c.member_id))
        ).all()
        audited = (await connection.execute(select(func.count()).select_from(audit_log))).scalar()
    return (
        sorted(
            (r.id, r.tenant_id, r.version, str(r.last_modified), json.dumps(r.data, sort_keys=True))
            for r in rows
        ),
        sorted(tuple(m) for m in memberships),
        audited,
    )


def id_filter(*ids: str) -> str:
    return " or ".join(f'id eq "{i}"' for i in ids)


# -- the data of three organisations ------------------------------------------------------


@dataclass
class Holdings:
    """What one organisation created, by name."""

    users: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> set[str]:
        return set(self.users.values()) | set(self.groups.values())


async def _created(client: httpx.AsyncClient, endpoint: str, body: dict[str, Any]) -> str:
    response = await client.post(endpoint, json=body)
    assert response.status_code == 201, response.text
    resource_id: str = response.json()["id"]
    return resource_id


def unique_user(key: str) -> str:
    return f"{key}.unik@example.se"


def unique_group(key: str) -> str:
    return f"{key}-grupp"


@pytest.fixture
async def world(app: Litestar, clean: None, organisations: Organisations) -> dict[str, Holdings]:
    """Users and groups of both municipalities and the region, some with the same names."""
    made: dict[str, Holdings] = {}
    for key in ORGS:
        organisation: Organisation = getattr(organisations, key)
        held = Holdings()
        async with api_client(app, organisation.token) as client:
            held.users["anna"] = await _created(
                client,
                "/Users",
                user_body(SHARED_USER, externalId=SHARED_EXTERNAL_ID, password="Anna-1-Hemligt"),
            )
            held.users["bo"] = await _created(
                client, "/Users", user_body("Bo.Berg@example.se", displayName="Bo Berg")
            )
            held.users["unique"] = await _created(client, "/Users", user_body(unique_user(key)))
            held.groups["shared"] = await _created(
                client,
                "/Groups",
                {
                    "schemas": [GROUP_SCHEMA],
                    "displayName": SHARED_GROUP,
                    "members": [{"value": held.users["anna"]}, {"value": held.users["unique"]}],
                },
            )
            held.groups["unique"] = await _created(
                client,
                "/Groups",
                {
                    "schemas": [GROUP_SCHEMA],
                    "displayName": unique_group(key),
                    "members": [{"value": held.groups["shared"]}, {"value": held.users["bo"]}],
                },
            )
        made[key] = held
    return made


# -- the matrix ---------------------------------------------------------------------------


def _normalised(response: httpx.Response, resource_id: str) -> tuple[int, str | None, str]:
    body = response.json()
    return response.status_code, body.get("scimType"), body["detail"].replace(resource_id, "<id>")


async def _own_view(probe: Probe, own: Holdings, everything: set[str]) -> None:
    """The caller is who it should be: it sees exactly its own organisation's data."""
    assert listed_ids(await probe("GET", "/Users")) == set(own.users.values())
    assert listed_ids(await probe("GET", "/Groups")) == set(own.groups.values())
    assert listed_ids(await probe("GET", "/")) == own.ids
    assert listed_ids(await probe("POST", "/.search", json_body={})) == own.ids
    every = {"schemas": [SEARCH_SCHEMA], "filter": id_filter(*everything)}
    assert listed_ids(await probe("POST", "/.search", json_body=every)) == own.ids
    shared = f'userName eq "{SHARED_USER}" or displayName eq "{SHARED_GROUP}"'
    expected = {own.users["anna"], own.groups["shared"]}
    assert listed_ids(await probe("GET", "/", params={"filter": shared})) == expected
    assert listed_ids(await probe("POST", "/.search", json_body={"filter": shared})) == expected
    for params in (
        {"filter": f'userName eq "{SHARED_USER}"'},
        {"filter": f'userName eq "{SHARED_USER.upper()}"'},
        {"filter": f'externalId eq "{SHARED_EXTERNAL_ID}"'},
    ):
        assert listed_ids(await probe("GET", "/Users", params=params)) == {own.users["anna"]}
    search = {"filter": 'userName eq "bo.berg@example.se"'}
    found = await probe("POST", "/Users/.search", json_body=search)
    assert listed_ids(found) == {own.users["bo"]}
    by_name = {"filter": f'displayName eq "{SHARED_GROUP}"'}
    assert listed_ids(await probe("GET", "/Groups", params=by_name)) == {own.groups["shared"]}
    # User.groups and Group.members name only the organisation's own resources.
    anna = (await probe("GET", f"/Users/{own.users['anna']}")).json()
    assert {g["value"] for g in anna["groups"]} == {own.groups["shared"]}
    shared_group = (await probe("GET", f"/Groups/{own.groups['shared']}")).json()
    assert {m["value"] for m in shared_group["members"]} == {
        own.users["anna"],
        own.users["unique"],
    }
    users = (await probe("GET", "/Users", params={"attributes": "groups"})).json()
    for user in users["Resources"]:
        assert {g["value"] for g in user.get("groups", [])} <= set(own.groups.values())


async def _foreign_resource(
    probe: Probe,
    endpoint: str,
    resource_id: str,
    own: Holdings,
    unknown: dict[tuple[str, str], tuple[int, str | None, str]],
    turn: int,
) -> None:
    """Another organisation's resource is exactly as absent as one that never existed."""
    if endpoint == "Users":
        replacement: dict[str, Any] = user_body("takeover@example.se", displayName="Kapad")
        patch = patch_body({"op": "replace", "path": "displayName", "value": "Kapad"})
    else:
        replacement = {
            "schemas": [GROUP_SCHEMA],
            "displayName": "Kapad",
            "members": [{"value": own.users["anna"]}],
        }
        patch = patch_body(
            {"op": "add", "path": "members", "value": [{"value": own.users["anna"]}]}
        )
    for method, body in (("GET", None), ("PUT", replacement), ("PATCH", patch), ("DELETE", None)):
        response = await probe(method, f"/{endpoint}/{resource_id}", json_body=body)
        assert_error(response, 404)
        assert _normalised(response, resource_id) == unknown[(method, endpoint)]
    # By id in a query of its type (queries at the root are made for all ids at once).
    query = {"filter": f'id eq "{resource_id}"'}
    assert_empty(await probe("GET", f"/{endpoint}", params=query))
    assert_empty(await probe("POST", f"/{endpoint}/.search", json_body=query))
    # Nor can it be made a member of the caller's groups: a new group with it always, and one
    # of the other ways of saying so in turn.
    group = own.groups["shared"]
    member = [{"value": resource_id}]
    new_group = {"schemas": [GROUP_SCHEMA], "displayName": "Ny", "members": member}
    assert_error(await probe("POST", "/Groups", json_body=new_group), 400, "invalidValue")
    method, body = [
        (
            "PUT",
            {
                "schemas": [GROUP_SCHEMA],
                "displayName": SHARED_GROUP,
                "members": [{"value": own.users["anna"]}, *member],
            },
        ),
        ("PATCH", patch_body({"op": "add", "path": "members", "value": member})),
        ("PATCH", patch_body({"op": "replace", "path": "members", "value": member})),
        ("PATCH", patch_body({"op": "add", "value": {"members": member}})),
        (
            "PATCH",
            patch_body(
                {"op": "add", "path": "members", "value": [{"value": own.users["bo"]}, *member]}
            ),
        ),
    ][turn % 5]
    assert_error(await probe(method, f"/Groups/{group}", json_body=body), 400, "invalidValue")
    # Nor found through membership.
    if endpoint == "Users":
        query = {"filter": f'members.value eq "{resource_id}"'}
        assert_empty(await probe("GET", "/Groups", params=query))
    else:
        query = {"filter": f'groups.value eq "{resource_id}"'}
        assert_empty(await probe("GET", "/Users", params=query))


@pytest.mark.parametrize(("way", "org"), CALLERS)
async def test_no_caller_reaches_another_organisations_data(
    app: Litestar,
    cert_app: Litestar,
    engine: AsyncEngine,
    registered: dict[str, Registered],
    world: dict[str, Holdings],
    way: Way,
    org: str,
) -> None:
    own = world[org]
    foreign = [world[key] for key in ORGS if key != org]
    forbidden = set().union(*(held.ids for held in foreign))
    assert len(forbidden) == 10 and not forbidden & own.ids
    async with way.client(app, cert_app, registered[org]) as client:
        probe = Probe(client, forbidden)
        await _own_view(probe, own, own.ids | forbidden)
        before = await snapshot(engine)

        # What the server says of an id that no organisation has.
        unknown: dict[tuple[str, str], tuple[int, str | None, str]] = {}
        nobody = str(uuid.uuid4())
        for endpoint in ("Users", "Groups"):
            for method in ("GET", "PUT", "PATCH", "DELETE"):
                body = (
                    patch_body({"op": "replace", "path": "displayName", "value": "x"})
                    if method == "PATCH"
                    else user_body("x@example.se")
                    if endpoint == "Users"
                    else {"schemas": [GROUP_SCHEMA], "displayName": "x"}
                    if method == "PUT"
                    else None
                )
                response = await probe(method, f"/{endpoint}/{nobody}", json_body=body)
                assert_error(response, 404)
                unknown[(method, endpoint)] = _normalised(response, nobody)

        turn = 0
        for key, held in zip([k for k in ORGS if k != org], foreign, strict=True):
            for endpoint, named in (("Users", held.users), ("Groups", held.groups)):
                for resource_id in named.values():
                    await _foreign_resource(probe, endpoint, resource_id, own, unknown, turn)
                    turn += 1
            # Names only another organisation uses find nothing.
            only_there = {"filter": f'userName eq "{unique_user(key)}"'}
            assert_empty(await probe("GET", "/Users", params=only_there))
            assert_empty(await probe("POST", "/Users/.search", json_body=only_there))
            assert_empty(await probe("GET", "/", params=only_there))
            only_there = {"filter": f'displayName eq "{unique_group(key)}"'}
            assert_empty(await probe("GET", "/Groups", params=only_there))
            assert_empty(await probe("POST", "/.search", json_body=only_there))
        # Every foreign id at once, at the root, with and without the SearchRequest schema.
        for ids in (sorted(forbidden)[:5], sorted(forbidden)[5:]):
            query = {"filter": id_filter(*ids)}
            assert_empty(await probe("GET", "/", params=query))
            assert_empty(await probe("POST", "/.search", json_body=query))
            search = {"schemas": [SEARCH_SCHEMA], **query}
            assert_empty(await probe("POST", "/.search", json_body=search))

        assert await snapshot(engine) == before, "a refused request changed something"
        assert listed_ids(await probe("GET", "/")) == own.ids


# -- discovery, /Me, /Bulk ----------------------------------------------------------------

DISCOVERY = (
    "/ServiceProviderConfig",
    "/Schemas",
    "/ResourceTypes",
    "/ResourceTypes/User",
    f"/Schemas/{USER_SCHEMA}",
)


async def test_discovery_is_open_and_the_same_for_everyone(
    app: Litestar, cert_app: Litestar, registered: dict[str, Registered]
) -> None:
    for served in (app, cert_app):
        async with peer_client(served, {}) as anonymous:
            expected = {}
            for path in DISCOVERY:
                response = await anonymous.get(path)
                assert response.status_code == 200, response.text
                expected[path] = response.json()
        for parameters in CALLERS:
            way, org = parameters.values
            assert isinstance(way, Way) and isinstance(org, str)
            async with way.client(served, served, registered[org]) as client:
                for path in DISCOVERY:
                    response = await client.get(path)
                    assert response.status_code == 200, (way, path, response.text)
                    assert response.json() == expected[path], (way, path)


@pytest.mark.parametrize("peer", [TRUSTED_PROXY, UNTRUSTED_PEER], ids=["proxy", "other"])
async def test_me_and_bulk_require_authentication(
    app: Litestar, cert_app: Litestar, peer: tuple[str, int]
) -> None:
    for served in (app, cert_app):
        async with peer_client(served, {}, peer) as client:
            for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
                assert_refused(await client.request(method, "/Me", json={}))
            assert_refused(await client.post("/Bulk", json={}))


# -- refusals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    headers: dict[str, str]
    peer: tuple[str, int] = TRUSTED_PROXY


@pytest.fixture(scope="module")
async def refusals(
    engine: AsyncEngine, organisations: Organisations, registered: dict[str, Registered], pki: Pki
) -> dict[str, Refusal]:
    stockholm = registered["stockholm"]
    goteborg = registered["goteborg"]
    name = stockholm.organisation.name
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(stockholm.organisation.org_number)
        revoked_id, revoked = await operator.issue_token(tenant, client_id=stockholm.token_client)
        await operator.revoke_token(tenant, revoked_id)
        expired_id, expired = await operator.issue_token(
            tenant, client_id=stockholm.token_client, days=30
        )
        await connection.execute(
            update(tokens)
            .where(tokens.c.id == expired_id)
            .values(expires=datetime.now(UTC) - timedelta(minutes=1))
        )
    other_ca = Authority("Other Root CA")
    valid_der = stockholm.admin.certificate.public_bytes(Encoding.DER)
    valid_client_cert = f":{base64.b64encode(valid_der).decode()}:"
    good_token = stockholm.organisation.token

    def nginx(issued: Issued) -> dict[str, str]:
        return certificate_headers(issued, "nginx")

    return {
        "no credentials": Refusal({}),
        "no credentials, untrusted peer": Refusal({}, UNTRUSTED_PEER),
        "basic authorization": Refusal({"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}),
        "bearer without token": Refusal({"Authorization": "Bearer"}),
        "bearer with blank token": Refusal({"Authorization": "Bearer    "}),
        "token without scheme": Refusal({"Authorization": good_token}),
        "token under another scheme": Refusal({"Authorization": f"Token {good_token}"}),
        "JWT": Refusal(
            {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
        ),
        "unknown token": Refusal({"Authorization": f"Bearer scim_{uuid.uuid4().hex}"}),
        "truncated token": Refusal({"Authorization": f"Bearer {good_token[:-1]}"}),
        "revoked token": Refusal({"Authorization": f"Bearer {revoked}"}),
        "expired token": Refusal({"Authorization": f"Bearer {expired}"}),
        "escaped PEM from an untrusted peer": Refusal(nginx(stockholm.admin), UNTRUSTED_PEER),
        "Client-Cert from an untrusted peer": Refusal(
            certificate_headers(stockholm.pinned, "rfc9440"), UNTRUSTED_PEER
        ),
        "expired certificate": Refusal(
            nginx(
                pki.issuing.issue(
                    "Expired", hsa_id=stockholm.admin_hsa, organisation=name, expired=True
                )
            )
        ),
        "certificate of another CA": Refusal(
            nginx(other_ca.issue("Forged", hsa_id=stockholm.admin_hsa, organisation=name))
        ),
        "unregistered HSA-id": Refusal(
            nginx(pki.issuing.issue("Okänd", hsa_id="SE2120000142-TENNONE", organisation=name))
        ),
        "unregistered certificate without HSA-id": Refusal(
            nginx(pki.issuing.issue("Okänt system", organisation=name))
        ),
        "administrator HSA-id, another organisation in O": Refusal(
            nginx(
                pki.issuing.issue(
                    "Tenna",
                    hsa_id=stockholm.admin_hsa,
                    organisation=goteborg.organisation.name,
                )
            )
        ),
        "system HSA-id, another organisation in O": Refusal(
            certificate_headers(
                pki.issuing.issue(
                    "IdP", hsa_id=goteborg.system_hsa, organisation=stockholm.organisation.name
                ),
                "rfc9440",
            )
        ),
        "garbage escaped PEM": Refusal({"X-SSL-Client-Cert": "not%20a%20certificate"}),
        "garbage inside PEM armour": Refusal(
            {
                "X-SSL-Client-Cert": quote(
                    "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n"
                )
            }
        ),
        "Client-Cert not base64": Refusal({"Client-Cert": ":!!!not base64!!!:"}),
        "Client-Cert not a byte sequence": Refusal({"Client-Cert": valid_client_cert[1:-1]}),
        "Client-Cert not DER": Refusal(
            {"Client-Cert": f":{base64.b64encode(b'garbage').decode()}:"}
        ),
        "Client-Cert-Chain garbage": Refusal(
            {"Client-Cert": valid_client_cert, "Client-Cert-Chain": ":Z2FyYmFnZQ==:, junk"}
        ),
    }


@pytest.fixture
async def victim(app: Litestar, clean: None, organisations: Organisations) -> dict[str, str]:
    """A Stockholm user in a Stockholm group, whom refused callers try to reach."""
    async with api_client(app, organisations.stockholm.token) as client:
        user = await _created(client, "/Users", user_body("offer@example.se"))
        group = await _created(
            client,
            "/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": "Offer", "members": [{"value": user}]},
        )
    return {"user": user, "group": group}


REFUSAL_NAMES = [
    "no credentials",
    "no credentials, untrusted peer",
    "basic authorization",
    "bearer without token",
    "bearer with blank token",
    "token without scheme",
    "token under another scheme",
    "JWT",
    "unknown token",
    "truncated token",
    "revoked token",
    "expired token",
    "escaped PEM from an untrusted peer",
    "Client-Cert from an untrusted peer",
    "expired certificate",
    "certificate of another CA",
    "unregistered HSA-id",
    "unregistered certificate without HSA-id",
    "administrator HSA-id, another organisation in O",
    "system HSA-id, another organisation in O",
    "garbage escaped PEM",
    "garbage inside PEM armour",
    "Client-Cert not base64",
    "Client-Cert not a byte sequence",
    "Client-Cert not DER",
    "Client-Cert-Chain garbage",
]


def test_every_refusal_is_tested(refusals: dict[str, Refusal]) -> None:
    assert sorted(refusals) == sorted(REFUSAL_NAMES)


@pytest.mark.parametrize("name", REFUSAL_NAMES)
async def test_bad_credentials_get_nowhere(
    cert_app: Litestar,
    engine: AsyncEngine,
    refusals: dict[str, Refusal],
    victim: dict[str, str],
    name: str,
) -> None:
    refusal = refusals[name]
    before = await snapshot(engine)
    user, group = victim["user"], victim["group"]
    async with peer_client(cert_app, refusal.headers, refusal.peer) as client:
        for method, url, body in (
            ("GET", "/Users", None),
            ("GET", f"/Users/{user}", None),
            ("GET", f"/Groups/{group}", None),
            ("GET", "/", None),
            ("POST", "/.search", {}),
            ("POST", "/Users/.search", {"filter": 'userName eq "offer@example.se"'}),
            ("POST", "/Users", user_body("inkraktare@example.se", password="Hemligt-123")),
            ("PUT", f"/Users/{user}", user_body("offer@example.se", displayName="Kapad")),
            (
                "PATCH",
                f"/Users/{user}",
                patch_body({"op": "replace", "path": "active", "value": False}),
            ),
            ("DELETE", f"/Users/{user}", None),
            ("DELETE", f"/Groups/{group}", None),
            ("GET", "/Me", None),
            ("POST", "/Bulk", {}),
        ):
            response = await client.request(method, url, json=body)
            assert_refused(response)
            assert user not in response.text and "offer@" not in response.text
    assert await snapshot(engine) == before


async def test_the_very_next_request_after_revocation_is_refused(
    app: Litestar,
    cert_app: Litestar,
    engine: AsyncEngine,
    clean: None,
    registered: dict[str, Registered],
) -> None:
    stockholm = registered["stockholm"]
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        tenant = await operator.tenant(stockholm.organisation.org_number)
        token_id, token = await operator.issue_token(
            tenant, client_id=stockholm.system_client, days=1
        )
    for served in (app, cert_app):
        async with api_client(served, token) as client:
            assert (await client.get("/Users")).status_code == 200
    async with api_client(app, token) as client:
        created = await client.post("/Users", json=user_body("fore@example.se"))
        assert created.status_code == 201
        async with engine.begin() as connection:
            await Operator(connection, "tests").revoke_token(tenant, token_id)
        for served in (app, cert_app):
            async with api_client(served, token) as revoked:
                assert_refused(await revoked.get("/Users"))
        assert_refused(await client.post("/Users", json=user_body("efter@example.se")))
        assert_refused(await client.get(f"/Users/{created.json()['id']}"))
    # The organisation's other credentials are untouched.
    async with api_client(app, stockholm.organisation.token) as other:
        assert listed_ids(await other.get("/Users")) == {created.json()["id"]}


# -- audit --------------------------------------------------------------------------------

SECRETS = (
    "Skapa-Hemligt-1",
    "Patch-Hemligt-2",
    "Urn-Hemligt-3",
    "Varde-Hemligt-4",
    "Put-Hemligt-5",
    "UrnVarde-Hemligt-6",
)


@pytest.mark.parametrize(("way", "org"), CALLERS)
async def test_audit_names_organisation_actor_action_and_no_password(
    app: Litestar,
    cert_app: Litestar,
    engine: AsyncEngine,
    clean: None,
    registered: dict[str, Registered],
    way: Way,
    org: str,
) -> None:
    who = registered[org]
    async with way.client(app, cert_app, who) as client:
        created = await client.post(
            "/Users", json=user_body("revisor@example.se", password=SECRETS[0])
        )
        assert created.status_code == 201, created.text
        user = created.json()["id"]
        patched = await client.patch(
            f"/Users/{user}",
            json=patch_body(
                {"op": "replace", "path": "password", "value": SECRETS[1]},
                {"op": "replace", "path": USER_PASSWORD_URN, "value": SECRETS[2]},
                {"op": "replace", "value": {"password": SECRETS[3], "title": "Revisor"}},
            ),
        )
        assert patched.status_code == 200, patched.text
        replaced = await client.put(
            f"/Users/{user}",
            json=user_body("revisor@example.se", password=SECRETS[4], title="Revisor"),
        )
        assert replaced.status_code == 200, replaced.text
        patched_again = await client.patch(
            f"/Users/{user}",
            json=patch_body({"op": "add", "value": {USER_PASSWORD_URN: SECRETS[5]}}),
        )
        assert patched_again.status_code == 200, patched_again.text
        group = await _created(
            client,
            "/Groups",
            {"schemas": [GROUP_SCHEMA], "displayName": "Revision", "members": [{"value": user}]},
        )
        emptied = await client.patch(
            f"/Groups/{group}", json=patch_body({"op": "remove", "path": "members"})
        )
        assert emptied.status_code == 204, emptied.text
        for response in (
            await client.delete(f"/Groups/{group}"),
            await client.delete(f"/Users/{user}"),
        ):
            assert response.status_code == 204, response.text
        for response in (created, patched, replaced, patched_again):
            assert not any(secret in response.text for secret in SECRETS)

    async with engine.connect() as connection:
        entries = [entry async for entry in audit.export(connection, who.organisation.id)]
        everything = [entry async for entry in audit.export(connection)]
        stored = (await connection.execute(select(resources.c.data))).all()
    mine = [e for e in entries if e["resourceId"] in (user, group)]
    assert [(e["action"], e["resourceId"]) for e in mine] == [
        ("User.create", user),
        ("User.patch", user),
        ("User.replace", user),
        ("User.patch", user),
        ("Group.create", group),
        ("Group.patch", group),
        ("Group.delete", group),
        ("User.delete", user),
    ]
    for entry in mine:
        assert entry["organisation"] == who.organisation.org_number, entry
        assert entry["actor"] == way.actor(who), entry
        assert entry["resourceType"] == entry["action"].split(".")[0], entry
    # Other organisations' logs do not mention this organisation's resources.
    for entry in everything:
        if entry["organisation"] != who.organisation.org_number:
            assert entry["resourceId"] not in (user, group), entry
    # No password anywhere: not in the log, not in what is stored.
    logged = json.dumps(everything, ensure_ascii=False)
    kept = json.dumps([row.data for row in stored], ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in logged
        assert secret not in kept


# -- property: random work by two identity systems ---------------------------------------


@dataclass
class Known:
    owner: str
    kind: str  # "User" or "Group"
    user_name: str | None = None
    alive: bool = True


NAMES = ("anna.ek@example.se", "Anna.Ek@example.se", "bo.berg@example.se", "cilla@example.se")
INDEX = st.integers(min_value=0, max_value=63)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("create_user"), st.sampled_from(NAMES)),
        st.tuples(st.just("create_group"), st.lists(INDEX, max_size=3)),
        st.tuples(st.just("patch"), INDEX),
        st.tuples(st.just("put"), INDEX),
        st.tuples(st.just("delete"), INDEX),
        st.tuples(st.just("add_member"), st.tuples(INDEX, INDEX)),
        st.tuples(st.just("list"), st.sampled_from(["/Users", "/Groups", "/"])),
        st.tuples(st.just("filter"), INDEX),
        st.tuples(st.just("get"), INDEX),
    ),
    min_size=4,
    max_size=16,
)


class Tenants:
    """The model: every id either tenant created, whose it is, and whether it still exists."""

    def __init__(self) -> None:
        self.known: dict[str, Known] = {}
        self.order: list[str] = []
        self.nobody = str(uuid.uuid4())

    def pick(self, index: int) -> str:
        return self.order[index % len(self.order)] if self.order else self.nobody

    def owns(self, tenant: str, resource_id: str, kind: str | None = None) -> bool:
        known = self.known.get(resource_id)
        return (
            known is not None
            and known.owner == tenant
            and known.alive
            and (kind is None or known.kind == kind)
        )

    def live(self, tenant: str, kind: str | None = None) -> set[str]:
        return {i for i in self.order if self.owns(tenant, i, kind)}

    def foreign(self, tenant: str) -> set[str]:
        return {i for i, known in self.known.items() if known.owner != tenant}

    def endpoint(self, resource_id: str) -> str:
        known = self.known.get(resource_id)
        return "Groups" if known is not None and known.kind == "Group" else "Users"


async def _step(
    probe: Probe, tenant: str, model: Tenants, operation: str, argument: Any, number: int
) -> None:
    if operation == "create_user":
        taken = any(
            (model.known[i].user_name or "").casefold() == argument.casefold()
            for i in model.live(tenant, "User")
        )
        response = await probe("POST", "/Users", json_body=user_body(argument))
        if taken:
            assert_error(response, 409, "uniqueness")
            return
        assert response.status_code == 201, response.text
        created = response.json()["id"]
        model.known[created] = Known(tenant, "User", argument)
        model.order.append(created)
    elif operation == "create_group":
        wanted = [model.pick(i) for i in argument]
        body = {
            "schemas": [GROUP_SCHEMA],
            "displayName": f"Grupp {number}",
            "members": [{"value": i} for i in wanted],
        }
        response = await probe("POST", "/Groups", json_body=body)
        if not all(model.owns(tenant, i) for i in wanted):
            assert_error(response, 400, "invalidValue")
            return
        assert response.status_code == 201, response.text
        created = response.json()["id"]
        model.known[created] = Known(tenant, "Group")
        model.order.append(created)
    elif operation in ("patch", "put", "delete", "get"):
        target = model.pick(argument)
        endpoint = model.endpoint(target)
        body: Any = None
        if operation == "patch":
            body = patch_body({"op": "replace", "path": "displayName", "value": f"Nytt {number}"})
        elif operation == "put":
            known = model.known.get(target)
            body = (
                {"schemas": [GROUP_SCHEMA], "displayName": f"Ersatt {number}"}
                if endpoint == "Groups"
                else user_body(
                    (known.user_name if known else None) or "x@example.se",
                    displayName=f"Ersatt {number}",
                )
            )
        method = {"patch": "PATCH", "put": "PUT", "delete": "DELETE", "get": "GET"}[operation]
        response = await probe(method, f"/{endpoint}/{target}", json_body=body)
        if not model.owns(tenant, target):
            assert_error(response, 404)
            return
        expected = {"PATCH": 204 if endpoint == "Groups" else 200, "DELETE": 204}
        assert response.status_code == expected.get(method, 200), response.text
        if operation == "delete":
            model.known[target].alive = False
        elif response.content:
            assert response.json()["id"] == target
    elif operation == "add_member":
        group, member = (model.pick(i) for i in argument)
        body = patch_body({"op": "add", "path": "members", "value": [{"value": member}]})
        response = await probe("PATCH", f"/Groups/{group}", json_body=body)
        if not model.owns(tenant, group, "Group"):
            assert_error(response, 404)
        elif not model.owns(tenant, member) or member == group:
            assert_error(response, 400, "invalidValue")
        else:
            assert response.status_code == 204, response.text
    elif operation == "list":
        kind = {"/Users": "User", "/Groups": "Group", "/": None}[argument]
        assert listed_ids(await probe("GET", argument)) == model.live(tenant, kind)
    elif operation == "filter":
        target = model.pick(argument)
        query = {"filter": f'id eq "{target}"'}
        expected_ids = {target} & model.live(tenant)
        assert listed_ids(await probe("GET", "/", params=query)) == expected_ids
        endpoint = model.endpoint(target)
        found = await probe("POST", f"/{endpoint}/.search", json_body=query)
        assert listed_ids(found) == expected_ids
        known = model.known.get(target)
        if known is not None and known.user_name:
            by_name = {"filter": f'userName eq "{known.user_name}"'}
            same_name = {
                i
                for i in model.live(tenant, "User")
                if (model.known[i].user_name or "").casefold() == known.user_name.casefold()
            }
            assert listed_ids(await probe("GET", "/Users", params=by_name)) == same_name


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS)
async def test_two_identity_systems_never_see_each_others_ids(
    app: Litestar,
    engine: AsyncEngine,
    organisations: Organisations,
    operations: list[tuple[str, Any]],
) -> None:
    async with engine.begin() as connection:
        await connection.execute(delete(members))
        await connection.execute(delete(resources))
    model = Tenants()
    tenants = ("stockholm", "goteborg")
    async with (
        api_client(app, organisations.stockholm.token) as stockholm,
        api_client(app, organisations.goteborg.token) as goteborg,
    ):
        clients = {"stockholm": stockholm, "goteborg": goteborg}
        for number, (operation, argument) in enumerate(operations):
            tenant = tenants[number % 2]
            probe = Probe(clients[tenant], model.foreign(tenant))
            await _step(probe, tenant, model, operation, argument, number)
        # Finally each sees exactly what it created and has not deleted.
        for tenant in tenants:
            probe = Probe(clients[tenant], model.foreign(tenant))
            assert listed_ids(await probe("GET", "/")) == model.live(tenant)


async def test_a_certificate_registered_to_two_clients_is_refused(
    cert_app: Litestar, engine: AsyncEngine, organisations: Organisations, pki: Pki, clean: None
) -> None:
    """Its HSA-id names Stockholm's client and its fingerprint Göteborg's: no guessing."""
    hsa_id = "SE2120000142-TWICE1"
    twice = pki.issuing.issue("Twice", hsa_id=hsa_id, organisation="Stockholms stad")
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        stockholm = await operator.tenant(organisations.stockholm.org_number)
        goteborg = await operator.tenant(organisations.goteborg.org_number)
        await operator.register_client(stockholm, "By HSA-id", hsa_id=hsa_id)
        await operator.register_client(goteborg, "By fingerprint", fingerprint=twice.fingerprint)
    async with peer_client(cert_app, certificate_headers(twice, "nginx")) as client:
        response = await client.get("/Users")
    assert_refused(response)
    assert "more than one" in response.json()["detail"]


async def test_another_organisations_cursor_is_refused(
    app: Litestar, organisations: Organisations, clean: None
) -> None:
    """A cursor is signed for the organisation it was issued to (and its resource types)."""
    async with api_client(app, organisations.stockholm.token) as stockholm:
        for n in range(3):
            response = await stockholm.post("/Users", json=user_body(f"cursor{n}@stockholm.se"))
            assert response.status_code == 201, response.text
        page = await stockholm.get("/Users", params={"cursor": "", "count": 1})
        cursor = page.json()["nextCursor"]
        assert (await stockholm.get("/Users", params={"cursor": cursor})).status_code == 200
        assert_error(
            await stockholm.get("/Groups", params={"cursor": cursor}), 400, "invalidCursor"
        )
        assert_error(await stockholm.get("/", params={"cursor": cursor}), 400, "invalidCursor")
    async with api_client(app, organisations.goteborg.token) as goteborg:
        response = await goteborg.get("/Users", params={"cursor": cursor})
        assert_error(response, 400, "invalidCursor")
