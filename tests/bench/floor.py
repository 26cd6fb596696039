"""The floor: the least a server can do for GET /Users/{id} on this stack (uvicorn, Litestar,
asyncpg): one query for the stored JSON by tenant and id, returned as it is stored, with no
authentication, no relations and no rendering. The benchmark compares GET by id with it.

Run by the benchmark as ``uvicorn tests.bench.floor:create_app --factory`` with
BENCH_FLOOR_DSN (a postgresql:// DSN) and BENCH_FLOOR_TENANT (the tenant id) set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar, Response, get

QUERY = "SELECT data FROM resources WHERE tenant_id = $1 AND resource_type = 'User' AND id = $2"
NOT_FOUND = b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404"}'


async def _text_json(connection: asyncpg.Connection) -> None:
    # The stored JSON goes out as PostgreSQL sends it, without decoding and encoding it.
    await connection.set_type_codec(
        "jsonb", encoder=str, decoder=str, schema="pg_catalog", format="text"
    )


def create_app() -> Litestar:
    dsn = os.environ["BENCH_FLOOR_DSN"]
    tenant = int(os.environ["BENCH_FLOOR_TENANT"])
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # The pool of the server under test: 10 connections (scim.settings.pool_size).
        pools.append(await asyncpg.create_pool(dsn, min_size=10, max_size=10, init=_text_json))
        try:
            yield
        finally:
            await pools[0].close()

    @get("/scim/v2/Users/{resource_id:str}", sync_to_thread=False)
    async def user(resource_id: str) -> Response[bytes]:
        data = await pools[0].fetchval(QUERY, tenant, resource_id)
        if data is None:
            return Response(NOT_FOUND, status_code=404, media_type="application/scim+json")
        return Response(data.encode(), media_type="application/scim+json")

    return Litestar(route_handlers=[user], lifespan=[lifespan], openapi_config=None)
