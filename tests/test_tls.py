"""Direct TLS end to end: ``scim serve --tls-cert --tls-key --client-ca`` in a subprocess, and
clients presenting SITHS-like certificates from a test PKI (root and intermediate)."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.auth.tls import tls_extension
from scim.operator import Operator
from scim.storage.tables import administrators, system_clients
from tests.conftest import SCIM, Organisations, user_body
from tests.live import free_port
from tests.pki import Authority, Issued

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

# HSA-ids unique to this run: the session database is shared with other test modules.
_RUN = uuid.uuid4().hex[:8].upper()
ADMIN_HSA = f"SE2120000142-A{_RUN}"
SYSTEM_HSA = f"SE2120000142-S{_RUN}"
UNREGISTERED_HSA = f"SE2120000142-U{_RUN}"
STOCKHOLM, GOTEBORG = "Stockholms stad", "Göteborgs stad"


@dataclass
class Pki:
    directory: Path
    root_file: Path  # what clients trust for the server certificate
    bundle_file: Path  # --client-ca: root and intermediate
    server: tuple[Path, Path]
    clients: dict[str, Issued]

    def context(self, name: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.root_file)
        if name is not None:
            context.load_cert_chain(*self.clients[name].write(self.directory, name))
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    root = Authority("SITHS Test Root")
    intermediate = Authority("SITHS Test Function CA", root)
    other = Authority("Some Other Root")
    root_file, bundle_file = directory / "root.pem", directory / "client-ca.pem"
    root_file.write_bytes(root.pem)
    bundle_file.write_bytes(root.pem + intermediate.pem)
    server = root.issue("127.0.0.1", ip_addresses=["127.0.0.1"], client_auth=False)
    clients = {
        "admin": intermediate.issue("Anna Admin", hsa_id=ADMIN_HSA, organisation=STOCKHOLM),
        "system": intermediate.issue("Stockholm IdP", hsa_id=SYSTEM_HSA, organisation=STOCKHOLM),
        "pinned": intermediate.issue("Göteborg IdP", organisation=GOTEBORG),
        # The administrator's HSA-id, but another organisation in O.
        "wrong-organisation": intermediate.issue(
            "Anna Admin", hsa_id=ADMIN_HSA, organisation=GOTEBORG
        ),
        "unregistered": intermediate.issue(
            "Nils Nobody", hsa_id=UNREGISTERED_HSA, organisation=STOCKHOLM
        ),
        "expired": intermediate.issue(
            "Anna Admin", hsa_id=ADMIN_HSA, organisation=STOCKHOLM, expired=True
        ),
        "foreign": other.issue("Anna Admin", hsa_id=ADMIN_HSA, organisation=STOCKHOLM),
    }
    return Pki(directory, root_file, bundle_file, server.write(directory, "server"), clients)


@pytest.fixture(scope="module")
async def registered(
    engine: AsyncEngine, organisations: Organisations, pki: Pki
) -> AsyncIterator[None]:
    """Stockholm's administrator and identity system by HSA-id, Göteborg's pinned by
    fingerprint; removed again afterwards."""
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        stockholm = await operator.tenant(organisations.stockholm.org_number)
        goteborg = await operator.tenant(organisations.goteborg.org_number)
        await operator.add_administrator(
            stockholm, ADMIN_HSA, "Anna", "Admin", "anna.admin@stockholm.se"
        )
        client_ids = [
            await operator.register_client(stockholm, "Stockholm IdP", hsa_id=SYSTEM_HSA),
            await operator.register_client(
                goteborg, "Göteborg IdP", fingerprint=pki.clients["pinned"].fingerprint
            ),
        ]
    yield
    async with engine.begin() as connection:
        await connection.execute(delete(administrators).where(administrators.c.hsa_id == ADMIN_HSA))
        await connection.execute(delete(system_clients).where(system_clients.c.id.in_(client_ids)))


@pytest.fixture(scope="module")
def server(database_url: str, pki: Pki, registered: None) -> Iterator[str]:
    """``scim serve`` over TLS, asking for client certificates from the test PKI."""
    port = free_port()
    environment = {**os.environ}
    # The CA bundle must come from --client-ca, and no proxy is trusted here.
    for name in ("SCIM_CA_BUNDLE", "SCIM_TRUSTED_PROXIES"):
        environment.pop(name, None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scim.cli",
            "serve",
            "--port",
            str(port),
            "--database",
            database_url,
            "--tls-cert",
            str(pki.server[0]),
            "--tls-key",
            str(pki.server[1]),
            "--client-ca",
            str(pki.bundle_file),
            "--log-level",
            "warning",
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"https://127.0.0.1:{port}/scim/v2"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(
                    f"{url}/ServiceProviderConfig", verify=pki.context(None), timeout=1
                )
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.communicate()[0].decode()
                pytest.fail(f"scim serve --tls-cert did not start:\n{output}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture
def connect(server: str, pki: Pki, clean: None) -> Iterator[Any]:
    """``connect(certificate name or None, token=None)``: an HTTPS client of the server."""
    opened: list[httpx.Client] = []

    def open_client(name: str | None, token: str | None = None) -> httpx.Client:
        headers = {"Content-Type": SCIM, "Accept": SCIM}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(
            base_url=server, verify=pki.context(name), headers=headers, timeout=10
        )
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def _user_names(client: httpx.Client) -> list[str]:
    response = client.get("/Users")
    assert response.status_code == 200, response.text
    return sorted(resource["userName"] for resource in response.json().get("Resources", []))


def _create(client: httpx.Client, user_name: str) -> dict[str, Any]:
    response = client.post("/Users", json=user_body(user_name))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _assert_scim_401(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(SCIM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert str(body["status"]) == "401"
    assert detail in body["detail"]


def test_an_administrator_certificate_acts_for_its_organisation_only(
    connect: Any, organisations: Organisations
) -> None:
    admin = connect("admin")
    _create(admin, "anna.andersson@stockholm.se")
    goteborgs = _create(connect(None, organisations.goteborg.token), "goran@goteborg.se")

    assert _user_names(admin) == ["anna.andersson@stockholm.se"]
    assert admin.get(f"/Users/{goteborgs['id']}").status_code == 404
    found = admin.get("/Users", params={"filter": 'userName eq "goran@goteborg.se"'})
    assert found.json()["totalResults"] == 0


def test_function_certificates_registered_by_hsa_id_or_fingerprint(
    connect: Any, organisations: Organisations
) -> None:
    _create(connect("admin"), "anna.andersson@stockholm.se")
    pinned = connect("pinned")
    _create(pinned, "goran@goteborg.se")

    assert _user_names(connect("system")) == ["anna.andersson@stockholm.se"]
    # The pinned certificate acts for Göteborg, the organisation it was registered for.
    assert _user_names(pinned) == ["goran@goteborg.se"]
    assert _user_names(connect(None, organisations.goteborg.token)) == ["goran@goteborg.se"]


def test_a_certificate_naming_another_organisation_is_refused(connect: Any) -> None:
    _assert_scim_401(connect("wrong-organisation").get("/Users"), "is not the registered")


def test_a_trusted_but_unregistered_certificate_is_refused(connect: Any) -> None:
    _assert_scim_401(connect("unregistered").get("/Users"), "not registered")


def test_no_certificate_and_no_token_is_refused(connect: Any) -> None:
    _assert_scim_401(connect(None).get("/Users"), "Authentication required")


@pytest.mark.parametrize("name", ["expired", "foreign"])
def test_the_handshake_refuses_an_expired_or_foreign_certificate(
    server: str, pki: Pki, name: str
) -> None:
    # With a CA bundle, CERT_OPTIONAL still verifies a certificate the client presents, and a
    # failure ends the TLS handshake: the connection is dropped before any HTTP is exchanged,
    # so there is no HTTP response to carry a SCIM error body. (The server's TLS stack, uvloop
    # like asyncio, drops it without even sending a TLS alert.)
    context = pki.context(name)
    # Under TLS 1.2 the client's handshake waits for the server's Finished, so the refusal is
    # an ssl error while connecting.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(httpx.ConnectError) as raised, httpx.Client(verify=context) as client:
        client.get(f"{server}/Users")
    causes: list[BaseException] = []
    error: BaseException | None = raised.value
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(cause, ssl.SSLError) for cause in causes), repr(causes)

    # Under TLS 1.3 the client finishes its side of the handshake before the server has checked
    # its certificate; the refusal shows as the connection closing without a response.
    with pytest.raises(httpx.TransportError), httpx.Client(verify=pki.context(name)) as client:
        client.get(f"{server}/Users")


def test_a_bearer_token_still_works_over_tls(connect: Any, organisations: Organisations) -> None:
    stockholm = connect(None, organisations.stockholm.token)
    _create(stockholm, "anna.andersson@stockholm.se")
    assert _user_names(stockholm) == ["anna.andersson@stockholm.se"]
    # A token decides over a certificate presented on the same connection.
    both = connect("pinned", organisations.stockholm.token)
    assert _user_names(both) == ["anna.andersson@stockholm.se"]


def test_the_tls_extension_follows_the_asgi_spec(pki: Pki) -> None:
    """What the protocol puts in ``scope["extensions"]["tls"]``, from an in-memory handshake."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(*pki.server)
    server_context.verify_mode = ssl.CERT_OPTIONAL
    server_context.load_verify_locations(pki.bundle_file)
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server_context.wrap_bio(server_in, server_out, server_side=True)
    client_side = pki.context("admin").wrap_bio(client_in, client_out, server_hostname="127.0.0.1")
    for _ in range(5):
        for end in (client_side, server_side):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        server_in.write(client_out.read())
        client_in.write(server_out.read())

    tls = tls_extension(server_side)
    leaf = pki.clients["admin"]
    chain = tls["client_cert_chain"]
    assert isinstance(chain, list)
    assert chain[0] == leaf.pem.decode()  # the leaf first, as PEM text
    assert tls["client_cert_name"] == leaf.certificate.subject.rfc4514_string()
    assert f"2.5.4.5={ADMIN_HSA}" in str(tls["client_cert_name"])
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert tls["server_cert"] is None
    assert tls["client_cert_error"] is None
