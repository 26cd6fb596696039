"""``/healthz`` and ``/readyz`` for load balancers and orchestrators, outside SCIM auth: they
say whether the process runs and whether it can serve, and nothing about any organisation."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from alembic.script import ScriptDirectory
from litestar import Request, Response, get
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage.database import alembic_script, revision

logger = logging.getLogger("scim.health")


def _json(body: dict[str, Any], status: int = 200) -> Response[bytes]:
    headers = {"Cache-Control": "no-store"}
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


@get("/healthz", name="healthz")
async def healthz() -> Response[bytes]:
    """The process is alive and answers."""
    return _json({"status": "ok"})


@get("/readyz", name="readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The database answers and is migrated to the revision this code expects."""
    engine: AsyncEngine = request.app.state.engine
    script: ScriptDirectory = alembic_script()
    expected = script.get_current_head()
    try:
        current = await revision(engine)
    except Exception as error:  # whatever the driver raises, the answer is "not ready"
        logger.warning("database not reachable", extra={"error": type(error).__name__})
        return _json({"status": "unavailable", "database": "unreachable"}, 503)
    if current != expected:
        return _json(
            {
                "status": "unavailable",
                "database": "not migrated",
                "revision": current,
                "expected": expected,
            },
            503,
        )
    return _json({"status": "ready", "database": "ok", "revision": current})
