"""The application factory: the one place where the engine (``scim``) and the domain
(``extensions``) are joined."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.plugins.prometheus import PrometheusController
from scim2_models import SCIMException

from extensions import EServices
from scim.api.browser import client_files, root, security_headers
from scim.api.discovery import DiscoveryController
from scim.api.events import event_keys, poll
from scim.api.health import healthz, readyz
from scim.api.history import history
from scim.api.http import too_large
from scim.api.openapi import openapi
from scim.api.resources import ResourceController, authenticate
from scim.api.session import SessionController
from scim.auth.authenticate import Authenticator
from scim.auth.verified import Verified
from scim.bulk import BulkService
from scim.errors import SCIM_MEDIA_TYPE, error_body, internal, unavailable, with_status
from scim.events.delivery import Transmitter
from scim.hooks import Domain
from scim.observability import observed, watch_pool
from scim.ratelimit import RateLimited, RateLimiter
from scim.registry import Registry
from scim.service import ResourceService
from scim.settings import Settings
from scim.storage import counts, database, direct, statistics
from scim.storage.database import create_engine
from scim.storage.listening import Listener

logger = logging.getLogger("scim")


def _scim_error(_: Request[Any, Any, Any], error: SCIMException) -> Response[bytes]:
    headers = None
    if error.status == 401:
        # RFC 6750 §3 / RFC 7235 §3.1: a 401 names the scheme to authenticate with.
        headers = {"WWW-Authenticate": 'Bearer realm="scim"'}
    elif isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after)}
    return Response(
        error_body(error), status_code=error.status, media_type=SCIM_MEDIA_TYPE, headers=headers
    )


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    detail = str(error.detail)
    if error.status_code == 404:
        detail = "No such endpoint"
    elif error.status_code == 413:
        detail = too_large(request.app.state.settings.max_payload_size)
    scim_error = with_status(error.status_code, detail)
    return Response(
        error_body(scim_error),
        status_code=error.status_code,
        media_type=SCIM_MEDIA_TYPE,
        headers=error.headers,
    )


def _internal_error(_: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    if database.unavailable(error):
        # RFC 7231 §6.6.4: temporary; the client may retry shortly. No stack trace: it is
        # the database's state, logged once per request at warning level.
        logger.warning("database unavailable", extra={"error": type(error).__name__})
        return Response(
            error_body(unavailable()),
            status_code=503,
            media_type=SCIM_MEDIA_TYPE,
            headers={"Retry-After": "1"},
        )
    logger.exception("unhandled error", exc_info=error)
    return Response(error_body(internal()), status_code=500, media_type=SCIM_MEDIA_TYPE)


# The domain this server runs: the agency's e-services (the CLI asks for it here too).
DOMAIN: type[Domain] = EServices


def create_app(settings: Settings | None = None, domain: Domain | None = None) -> Litestar:
    """The server; with ``domain`` given (``Domain()``: none), that instead of ``DOMAIN``."""
    settings = settings or Settings.from_env()
    if domain is None:
        domain = DOMAIN.from_settings(settings)
    registry = Registry(settings, domain)
    engine = create_engine(settings.database_url, pool_size=settings.pool_size)
    # The server's reads keep what they need of the pool; its overflow stays for writes.
    direct.keep(engine, settings.pool_size)
    service = ResourceService(registry, engine, settings)
    transmitter = Transmitter(engine, settings, domain)
    service.events_committed = transmitter.committed
    listener = Listener(engine)
    transmitter.listen_to(listener)
    verified = Verified(engine, listener)

    rate_limiter = RateLimiter(engine, settings.rate_limit_client, settings.rate_limit_tenant)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        syncing = asyncio.create_task(rate_limiter.run()) if rate_limiter.enabled else None
        delivering = asyncio.create_task(transmitter.run())
        listening = asyncio.create_task(listener.run())
        folding = asyncio.create_task(counts.keep_folded(engine))
        analysing = asyncio.create_task(statistics.keep_analysed(engine))
        pooling = asyncio.create_task(watch_pool(engine))
        verified.watching = True
        # What is loaded by now lives as long as the process: keep it out of every garbage
        # collection, whose full passes otherwise cost tens of milliseconds in a Bulk request.
        gc.freeze()
        try:
            yield
        finally:
            verified.watching = False
            rate_limiter.stopping = True
            if syncing is not None:
                await syncing  # its last sync, whole (``RateLimiter.run``)
            for task in (delivering, listening, folding, analysing, pooling):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            await transmitter.close()
            await engine.dispose()

    # Discovery describes the service and no organisation's data: it is open to all.
    discovery = Router(path=settings.base_path, route_handlers=[DiscoveryController])
    api = Router(
        path=settings.base_path,
        route_handlers=[ResourceController],
        before_request=authenticate,
    )
    # Outside the SCIM namespace, for the organisation's callers: its history, and the
    # domain's own routes.
    extras = Router(
        path="/", route_handlers=[history, *domain.routes()], before_request=authenticate
    )
    # The browser client (static files, public) and its login and logout, where each handler
    # checks its own credentials.
    return Litestar(
        route_handlers=[
            discovery,
            api,
            extras,
            SessionController,
            client_files(),
            root,
            healthz,
            readyz,
            # Security events' receivers: the public keys, and polling (own credentials).
            event_keys,
            poll,
            openapi,
            PrometheusController,  # at METRICS_PATH
        ],
        middleware=[observed(security_headers)],
        state=State(
            {
                "settings": settings,
                "registry": registry,
                "service": service,
                "bulk": BulkService(service),
                "engine": engine,
                "authenticator": Authenticator(engine, settings, verified),
                "rate_limiter": rate_limiter,
                "transmitter": transmitter,
            }
        ),
        exception_handlers={
            SCIMException: _scim_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        lifespan=[lifespan],
        request_max_body_size=settings.max_payload_size,
        openapi_config=None,
        debug=False,
        # Errors are logged through the "scim" logger, configured by uvicorn or the host;
        # Litestar's own queue-backed logging would add a thread that outlives test captures.
        logging_config=None,
    )
