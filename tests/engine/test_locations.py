"""RFC 7644 §3.1 and RFC 7643 §3.1: a resource's ``location`` is its URI as the client
reaches the server, each request by the way it came (the base URL is made once per way)."""

from __future__ import annotations

import httpx

from tests.engine.conftest import create_user


async def test_each_request_gets_locations_on_the_host_it_used(client: httpx.AsyncClient) -> None:
    user = await create_user(client, "located@example.se")
    path = f"/Users/{user['id']}"
    hosts = ["scim.test", "scim.kommun.se:8443", "scim.test", "[::1]:8000", "scim.kommun.se:8443"]
    for host in hosts:
        read = await client.get(path, headers={"Host": host})
        assert read.status_code == 200, read.text
        assert read.json()["meta"]["location"] == f"http://{host}/scim/v2{path}"
        listed = await client.get("/Users", params={"filter": f'id eq "{user["id"]}"'})
        assert listed.json()["Resources"][0]["meta"]["location"].startswith("http://scim.test/")


async def test_many_hosts_do_not_mix_up_locations(client: httpx.AsyncClient) -> None:
    """More ways of reaching the server than are kept: each still gets its own."""
    user = await create_user(client, "many.hosts@example.se")
    path = f"/Users/{user['id']}"
    for n in [*range(100), 3, 99]:
        host = f"host{n}.example"
        read = await client.get(path, headers={"Host": host})
        assert read.json()["meta"]["location"] == f"http://{host}/scim/v2{path}"
