"""Client certificates through a TLS-terminating proxy: the README's nginx block, run by a real
nginx in front of ``scim serve``, and certificate headers from peers the server does not trust.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.app import create_app
from scim.operator import Operator
from scim.settings import Settings
from tests.conftest import (
    ESERVICES,
    GROUP_SCHEMA,
    PATCH_SCHEMA,
    SCIM,
    Organisations,
    user_body,
)
from tests.live import free_port
from tests.pki import Authority, Issued

NGINX = Path("/usr/sbin/nginx")
README = Path(__file__).resolve().parents[1] / "README.md"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
STOCKHOLM = "Stockholms stad"
# Unique per run: the session database may hold other modules' registrations.
RUN = uuid.uuid4().hex[:6].upper()
ADMIN_HSA = f"SE2120000142-PXA{RUN}"
FUNCTION_HSA = f"SE2120000142-PXF{RUN}"


def readme_nginx_block() -> str:
    """The ```nginx block of the README's "### Behind nginx" section."""
    text = README.read_text(encoding="utf-8")
    start = text.find("\n### Behind nginx\n")
    assert start >= 0, "README.md has no '### Behind nginx' section"
    section = re.split(r"\n#{1,3} ", text[start + 1 :].split("\n", 1)[1], maxsplit=1)[0]
    blocks = re.findall(r"^```nginx\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) == 1, "the 'Behind nginx' section must have exactly one ```nginx block"
    block: str = blocks[0]
    return block


def substitute(block: str, replacements: dict[str, str]) -> str:
    for placeholder, value in replacements.items():
        assert placeholder in block, f"the README's nginx block no longer has {placeholder!r}"
        block = block.replace(placeholder, value)
    return block


# -- the test PKI -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    directory: Path
    root: Authority
    intermediate: Authority
    admin: Issued  # registered administrator of Stockholm
    function: Issued  # registered system client of Stockholm, by HSA-id
    expired: Issued  # the administrator's HSA-id, expired
    foreign: Issued  # the administrator's HSA-id, from another CA
    unregistered: Issued  # a valid certificate nobody registered

    @property
    def root_pem(self) -> Path:
        return self.directory / "root.pem"

    @property
    def bundle_pem(self) -> Path:
        """Root and issuing CA: nginx forwards the leaf alone (see the README)."""
        return self.directory / "bundle.pem"

    def files(self, issued: Issued) -> tuple[Path, Path]:
        return issued.write(self.directory, issued.fingerprint[:16])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    root = Authority("Test Root CA")
    intermediate = Authority("Test Issuing CA", root)
    other = Authority("Some Other CA")
    pki = Pki(
        directory,
        root,
        intermediate,
        admin=intermediate.issue("Anna Admin", hsa_id=ADMIN_HSA, organisation=STOCKHOLM),
        function=intermediate.issue("IdM Stockholm", hsa_id=FUNCTION_HSA, organisation=STOCKHOLM),
        expired=intermediate.issue(
            "Anna Admin", hsa_id=ADMIN_HSA, organisation=STOCKHOLM, expired=True
        ),
        foreign=other.issue("Anna Admin", hsa_id=ADMIN_HSA, organisation=STOCKHOLM),
        unregistered=intermediate.issue(
            "Nils Nobody", hsa_id=f"SE2120000142-PXN{RUN}", organisation=STOCKHOLM
        ),
    )
    pki.root_pem.write_bytes(root.pem)
    pki.bundle_pem.write_bytes(root.pem + intermediate.pem)
    return pki


@pytest.fixture(scope="module")
async def registered(engine: AsyncEngine, organisations: Organisations) -> None:
    async with engine.begin() as connection:
        operator = Operator(connection, "tests")
        stockholm = await operator.tenant(organisations.stockholm.org_number)
        await operator.add_administrator(
            stockholm, ADMIN_HSA, "Anna", "Admin", "anna.admin@stockholm.se"
        )
        await operator.register_client(stockholm, "IdM via nginx", hsa_id=FUNCTION_HSA)


# -- nginx in front of scim serve -----------------------------------------------------------


def _wait(what: str, ready: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if ready():
                return
        except (httpx.TransportError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            output = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"{what} did not start (exit code {process.poll()}):\n{output}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def proxied(
    database_url: str,
    engine: AsyncEngine,
    registered: None,
    pki: Pki,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """``scim serve`` behind nginx configured with the README's block; its https base URL."""
    if not NGINX.exists():
        pytest.fail(
            f"{NGINX} is missing: these tests run real nginx (apt-get install nginx; .ci/run "
            "installs it)"
        )
    directory = tmp_path_factory.mktemp("nginx")
    app_port, tls_port = free_port(), free_port()

    app_log = directory / "scim.log"
    environment = {
        **os.environ,
        "SCIM_CA_BUNDLE": str(pki.bundle_pem),
        "SCIM_TRUSTED_PROXIES": "127.0.0.1",
    }
    environment.pop("SCIM_PROXY_CERT_HEADER", None)
    with app_log.open("wb") as output:
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scim.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(app_port),
                "--database",
                database_url,
                "--log-level",
                "warning",
                # As deployed: several workers share nothing but the database.
                "--workers",
                "2",
            ],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    nginx: subprocess.Popen[bytes] | None = None
    try:
        _wait(
            "scim serve",
            lambda: (
                httpx.get(
                    f"http://127.0.0.1:{app_port}/scim/v2/ServiceProviderConfig", timeout=1
                ).status_code
                == 200
            ),
            app,
            app_log,
        )

        server_cert, server_key = pki.files(
            pki.intermediate.issue("localhost", server_names=["localhost"], client_auth=False)
        )
        block = substitute(
            readme_nginx_block(),
            {
                "listen 443 ssl;": f"listen 127.0.0.1:{tls_port} ssl;",
                "/etc/scim/server.pem": str(server_cert),
                "/etc/scim/server.key": str(server_key),
                "http://127.0.0.1:8000": f"http://127.0.0.1:{app_port}",
            },
        )
        temp = "\n".join(
            f"    {kind}_temp_path {directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx would hand its workers to nobody, who cannot enter pytest's directories.
        user = "user root;\n" if os.geteuid() == 0 else ""
        error_log = directory / "error.log"
        configuration = directory / "nginx.conf"
        configuration.write_text(
            f"{user}daemon off;\nmaster_process on;\nworker_processes 1;\n"
            f"pid {directory / 'nginx.pid'};\nerror_log {error_log} info;\n"
            f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n{block}}}\n"
        )
        with error_log.open("ab") as output:
            nginx = subprocess.Popen(
                [str(NGINX), "-e", str(error_log), "-c", str(configuration), "-p", str(directory)],
                stdout=output,
                stderr=output,
            )
        base = f"https://localhost:{tls_port}/scim/v2"
        with tls_client(pki, None, base) as probe:
            _wait(
                "nginx",
                lambda: probe.get("/ServiceProviderConfig").status_code == 200,
                nginx,
                error_log,
            )
        yield base
    finally:
        if nginx is not None:
            _stop(nginx)
        _stop(app)


def tls_client(pki: Pki, certificate: Issued | None, base: str, **headers: str) -> httpx.Client:
    """A client that trusts the test CA and, if given, presents ``certificate`` in TLS."""
    context = ssl.create_default_context(cafile=str(pki.root_pem))
    if certificate is not None:
        cert_file, key_file = pki.files(certificate)
        context.load_cert_chain(cert_file, key_file)
    return httpx.Client(
        base_url=base,
        verify=context,
        headers={"Accept": SCIM, "Content-Type": SCIM, **headers},
        timeout=10,
    )


def assert_scim_401(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body = response.json()
    assert ERROR_SCHEMA in body["schemas"]
    assert body["status"] == "401"
    assert reason in body["detail"], body["detail"]


# -- through nginx ---------------------------------------------------------------------------


def test_administrator_certificate_lists_its_organisations_users(
    proxied: str, pki: Pki, organisations: Organisations, clean: None
) -> None:
    # Bearer tokens get through the same port: nginx asks for a certificate, never demands one.
    for organisation, user_name in (
        (organisations.stockholm, "stina@stockholm.se"),
        (organisations.goteborg, "gote@goteborg.se"),
    ):
        auth = {"Authorization": f"Bearer {organisation.token}"}
        with tls_client(pki, None, proxied, **auth) as client:
            created = client.post("/Users", json=user_body(user_name))
            assert created.status_code == 201, created.text
    assert created.headers["strict-transport-security"] == "max-age=31536000"
    assert "frame-ancestors 'none'" in created.headers["content-security-policy"]
    # Locations name what the client used: https, nginx's host and port.
    assert created.headers["location"].startswith(f"{proxied}/Users/")
    assert created.json()["meta"]["location"] == created.headers["location"]

    with tls_client(pki, pki.admin, proxied) as client:
        response = client.get("/Users")
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [user["userName"] for user in listed["Resources"]] == ["stina@stockholm.se"]
    assert listed["Resources"][0]["meta"]["location"].startswith(f"{proxied}/Users/")


def test_function_certificate_registered_by_hsa_id(proxied: str, pki: Pki, clean: None) -> None:
    with tls_client(pki, pki.function, proxied) as client:
        created = client.post("/Users", json=user_body("from.idm@stockholm.se"))
        assert created.status_code == 201, created.text
        response = client.get("/Users", params={"filter": 'userName eq "from.idm@stockholm.se"'})
    assert response.status_code == 200, response.text
    assert response.json()["totalResults"] == 1


def test_two_clients_racing_through_two_workers_lose_nothing_and_duplicate_nothing(
    proxied: str, pki: Pki, clean: None
) -> None:
    """Two identity systems' requests, interleaved by nginx over both workers: each unique
    key is taken once, a stale If-Match loses instead of overwriting, and concurrent member
    additions all land."""

    def both(calls: list[Any]) -> list[httpx.Response]:
        with (
            tls_client(pki, pki.function, proxied) as first,
            tls_client(pki, pki.function, proxied) as second,
            ThreadPoolExecutor(max_workers=2) as pool,
        ):
            clients = (first, second)
            futures = [pool.submit(call, clients[number % 2]) for number, call in enumerate(calls)]
            return [future.result() for future in futures]

    def valid(response: httpx.Response) -> Any:
        assert response.status_code < 500, response.text
        if response.status_code != 204:
            assert response.headers["content-type"].startswith(SCIM)
            return response.json()
        return None

    # The same userName (and, in other pairs, the same HSA-id) created by both at once.
    hsa_ids = [f"SE2120000142-RACE{number}" for number in range(12)]
    calls = []
    for number, hsa_id in enumerate(hsa_ids):
        for side in ("a", "b"):
            body = user_body(f"race{number}{side if number % 2 else ''}@stockholm.se")
            body[ESERVICES] = {"hsaId": hsa_id}
            calls.append(lambda client, body=body: client.post("/Users", json=body))
    created = both(calls)
    for response in created:
        valid(response)
    statuses = sorted(response.status_code for response in created)
    assert statuses == [201] * len(hsa_ids) + [409] * len(hsa_ids)
    with tls_client(pki, pki.function, proxied) as client:
        listed = client.get("/Users", params={"filter": 'userName sw "race"', "count": 100})
        users = valid(listed)["Resources"]
        assert sorted(user[ESERVICES]["hsaId"] for user in users) == sorted(hsa_ids)

        # Both change the same user from the same version: one wins, one is told it is stale.
        target = users[0]
        version = client.get(f"/Users/{target['id']}").headers["etag"]
        group = valid(
            client.post("/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Race"})
        )

    def patch(value: str) -> Any:
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "displayName", "value": value}],
        }
        return lambda client: client.patch(
            f"/Users/{target['id']}", json=body, headers={"If-Match": version}
        )

    outcomes = both([patch("Winner A"), patch("Winner B")])
    for response in outcomes:
        valid(response)
    assert sorted(response.status_code for response in outcomes) == [200, 412]
    (winner,) = [response.json()["displayName"] for response in outcomes if response.is_success]

    # Every user added to the same group at once, one member per request.
    def add(member: str) -> Any:
        body = {
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": member}]}],
        }
        return lambda client: client.patch(f"/Groups/{group['id']}", json=body)

    for response in both([add(user["id"]) for user in users]):
        valid(response)
        assert response.status_code in (200, 204)
    with tls_client(pki, pki.function, proxied) as client:
        assert valid(client.get(f"/Users/{target['id']}"))["displayName"] == winner
        members = valid(client.get(f"/Groups/{group['id']}"))["members"]
    assert sorted(member["value"] for member in members) == sorted(user["id"] for user in users)

    # Cursor paging, each page on a new connection, whichever worker takes it: the workers
    # sign cursors with one secret.
    paged: list[str] = []
    cursor = ""
    while cursor is not None:
        with tls_client(pki, pki.function, proxied) as client:
            query = {"filter": 'userName sw "race"', "count": 1, "cursor": cursor}
            page = valid(client.get("/Users", params=query))
        paged += [user["id"] for user in page["Resources"]]
        cursor = page.get("nextCursor")
    assert sorted(paged) == sorted(user["id"] for user in users)


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        ("expired", "not trusted"),
        ("foreign", "not trusted"),
        ("unregistered", "not registered"),
    ],
)
def test_certificates_the_server_does_not_accept_get_a_scim_401(
    proxied: str, pki: Pki, which: str, reason: str
) -> None:
    # The server, not nginx, judges them: a SCIM error saying why, not nginx's HTML.
    with tls_client(pki, getattr(pki, which), proxied) as client:
        assert_scim_401(client.get("/Users"), reason)
        assert_scim_401(client.post("/Users", json=user_body(f"{which}@stockholm.se")), reason)


def test_no_certificate_and_no_token_gets_a_scim_401(proxied: str, pki: Pki) -> None:
    with tls_client(pki, None, proxied) as client:
        assert_scim_401(client.get("/Users"), "Authentication required")


def test_certificate_headers_a_client_sends_do_not_get_through(proxied: str, pki: Pki) -> None:
    der = pki.admin.certificate.public_bytes(Encoding.DER)
    spoofed = {
        "X-SSL-Client-Cert": quote(pki.admin.pem.decode()),
        "Client-Cert": f":{base64.b64encode(der).decode()}:",
    }
    # No certificate in TLS: nginx sends neither header on, whatever the client put in them.
    for name, value in spoofed.items():
        with tls_client(pki, None, proxied, **{name: value}) as client:
            assert_scim_401(client.get("/Users"), "Authentication required")
    # Its own certificate in TLS: nginx forwards that one, not the administrator's.
    with tls_client(pki, pki.unregistered, proxied, **spoofed) as client:
        assert_scim_401(client.get("/Users"), "not registered")


# -- directly, from trusted and untrusted peers ------------------------------------------------

TRUSTED = ("10.9.9.9", 5000)
UNTRUSTED = ("127.0.0.1", 5000)


@pytest.fixture(scope="module")
async def direct_apps(
    database_url: str, engine: AsyncEngine, pki: Pki
) -> AsyncIterator[dict[str, Litestar]]:
    """The app trusting the proxy at 10.9.9.9 alone: with the bundle nginx's server has (root
    and issuing CA), and with the root alone."""
    apps = {
        name: create_app(
            Settings(
                database_url=database_url,
                ca_bundle=str(bundle),
                trusted_proxies=("10.9.9.9",),
            )
        )
        for name, bundle in (("bundle", pki.bundle_pem), ("root", pki.root_pem))
    }
    yield apps
    for app in apps.values():
        await app.state.engine.dispose()


def direct_client(app: Litestar, peer: tuple[str, int], **headers: str) -> httpx.AsyncClient:
    """A client speaking to the app in process from ``peer``, bypassing any proxy."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=peer),
        base_url="http://scim.test/scim/v2",
        headers={"Accept": SCIM, **headers},
    )


def _byte_sequence(holder: Issued | Authority) -> str:
    """RFC 8941 byte sequence of the DER certificate, as in RFC 9440 headers."""
    return f":{base64.b64encode(holder.certificate.public_bytes(Encoding.DER)).decode()}:"


@pytest.mark.parametrize("form", ["X-SSL-Client-Cert", "Client-Cert"])
async def test_certificate_headers_count_only_from_trusted_proxies(
    direct_apps: dict[str, Litestar], pki: Pki, registered: None, form: str
) -> None:
    value = quote(pki.admin.pem.decode()) if form == "X-SSL-Client-Cert" else None
    headers = {form: value or _byte_sequence(pki.admin)}
    app = direct_apps["bundle"]
    async with direct_client(app, UNTRUSTED, **headers) as client:
        assert_scim_401(await client.get("/Users"), "Authentication required")
    async with direct_client(app, TRUSTED, **headers) as client:
        response = await client.get("/Users")
    assert response.status_code == 200, response.text
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]


async def test_client_cert_chain_from_a_trusted_proxy(
    direct_apps: dict[str, Litestar], pki: Pki, registered: None
) -> None:
    """With only the root as CA, the intermediate in Client-Cert-Chain leads the leaf to it."""
    app = direct_apps["root"]
    leaf = {"Client-Cert": _byte_sequence(pki.admin)}
    pair = {**leaf, "Client-Cert-Chain": _byte_sequence(pki.intermediate)}
    async with direct_client(app, TRUSTED, **pair) as client:
        response = await client.get("/Users")
    assert response.status_code == 200, response.text
    async with direct_client(app, TRUSTED, **leaf) as client:
        assert_scim_401(await client.get("/Users"), "not trusted")
    async with direct_client(app, UNTRUSTED, **pair) as client:
        assert_scim_401(await client.get("/Users"), "Authentication required")


async def test_forwarded_scheme_only_from_trusted_proxies(
    direct_apps: dict[str, Litestar], organisations: Organisations
) -> None:
    headers = {"Authorization": f"Bearer {organisations.stockholm.token}"}
    headers["X-Forwarded-Proto"] = "https"
    for peer, scheme in ((UNTRUSTED, "http"), (TRUSTED, "https")):
        async with direct_client(direct_apps["bundle"], peer, **headers) as client:
            response = await client.get("/ServiceProviderConfig")
        assert response.json()["meta"]["location"].startswith(f"{scheme}://scim.test/scim/v2/")
