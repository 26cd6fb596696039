"""Request ids, structured logs and metrics.

Every response carries ``X-Request-ID`` (the caller's, if it sent a sane one, else a new one),
and every request is logged as one JSON line with that id, the tenant and the actor. The line
holds the path but never the query string (filters carry names and e-mail addresses), headers,
tokens, cookies or bodies: the only personal datum logged is an actor's HSA-id.

Metrics: Litestar's Prometheus plugin counts and times requests by route and status; this
module adds what the plugin cannot know: requests per tenant (known only once a request is
authenticated) and the database connections in use. With several workers, ``scim serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics`` sums them all.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("scim.access")

METRICS_PATH = "/metrics"
TENANT_REQUESTS = Counter(
    "scim_tenant_requests_total",
    "Authenticated requests per tenant and status class",
    ["tenant", "status"],
)
DATABASE_CONNECTIONS = Gauge(
    "scim_database_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)


def prometheus_config() -> PrometheusConfig:
    # Routes by their template (/scim/v2/{endpoint}/{resource_id}), not by resource id.
    return PrometheusConfig(
        app_name="scim",
        prefix="scim",
        group_path=True,
        exclude=[METRICS_PATH, "/healthz", "/readyz"],
    )


def watch_pool(engine: AsyncEngine) -> None:
    """Count the engine's connections in use, as the pool hands them out and takes them back."""
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", lambda *_: DATABASE_CONNECTIONS.inc())
    event.listen(pool, "checkin", lambda *_: DATABASE_CONNECTIONS.dec())


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


def request_ids(app: ASGIApp) -> ASGIApp:
    """Middleware: give the request its id, echo it, and log the request when it is done."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        identifier = _incoming_id(scope)
        encoded = identifier.encode()
        token = request_id.set(identifier)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, encoded)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            principal = (scope.get("state") or {}).get("principal")
            if principal is not None:
                TENANT_REQUESTS.labels(str(principal.tenant.id), f"{status // 100}xx").inc()
            if access_logger.isEnabledFor(logging.INFO):  # off unless --access-log
                access_logger.info(
                    "request",
                    extra={
                        "requestId": identifier,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "durationMs": round((time.perf_counter() - started) * 1000, 2),
                        "tenant": principal.tenant.id if principal is not None else None,
                        "actor": getattr(principal, "actor", None),
                    },
                )
            request_id.reset(token)

    return middleware


# Attributes every LogRecord has; anything else was passed in ``extra`` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if "requestId" not in entry and (identifier := request_id.get()) is not None:
            entry["requestId"] = identifier  # a line logged while serving a request
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


JsonFormatter.converter = time.gmtime


def log_config(level: str, *, access_log: bool) -> dict[str, Any]:
    """``logging.config.dictConfig`` for ``scim serve``: JSON lines on stderr for the server's
    loggers and uvicorn's; one line per request from "scim.access" if ``access_log``."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            "scim": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["json"], "level": level.upper(), "propagate": False},
            "scim.access": {
                "handlers": ["json"],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
