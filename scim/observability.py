"""Request ids, structured logs and metrics.

Every response carries ``X-Request-ID`` (the caller's, if it sent a sane one, else a new one),
and every request is logged as one JSON line with that id, the tenant and the actor. The line
holds the path but never the query string (filters carry names and e-mail addresses), headers,
tokens, cookies or bodies: the only personal datum logged is an actor's HSA-id.

Metrics: requests counted and timed by route template and status (the names and labels of
Litestar's Prometheus plugin, whose middleware cost a GET about 8% of its time), requests per
tenant (known only once a request is authenticated) and the database connections in use.
With several workers, ``scim serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` so that ``/metrics``
sums them all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from functools import cache, lru_cache
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.storage import direct

REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
access_logger = logging.getLogger("scim.access")

METRICS_PATH = "/metrics"
APP_NAME = "scim"
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


async def watch_pool(engine: AsyncEngine, every: float = 1.0) -> None:
    """Keep the gauge of the engine's connections in use, read from its pool every ``every``
    seconds: a scrape sees it at most that old. Counted at each checkout and return instead,
    through the pool's events, it cost a GET by id 2% of its instructions."""
    checked_out = getattr(engine.sync_engine.pool, "checkedout", None)
    if checked_out is None:  # a pool that lends one connection to all (SQLite in memory)
        return
    while True:
        # Those direct reads keep between reads are idle, not in use (``direct.keep``).
        DATABASE_CONNECTIONS.set(checked_out() - direct.kept_idle(engine))
        await asyncio.sleep(every)


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
    return _ids.next()


class _RequestIds:
    """A request's own id: the process's random half, then its serial number there. Unique
    across processes and restarts as a random id is, without asking the kernel's random
    source for each request (a thirtieth of a GET's time): it names a request in the logs
    and authorises nothing, so that the next one can be guessed does not matter."""

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.serials = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.serials):016x}"


_ids = _RequestIds()
os.register_at_fork(after_in_child=_ids.renew)  # a forked worker is another process


# Requests by method, route template (not the path: ids stay out of the labels) and status.
_LABELS = ["method", "path", "status_code", "app_name"]
REQUESTS = Counter("scim_requests_total", "Total requests", _LABELS)
REQUEST_ERRORS = Counter("scim_requests_error_total", "Requests answered 5xx", _LABELS)
REQUEST_DURATION = Histogram(
    "scim_request_duration_seconds", "Request duration, in seconds", _LABELS
)
IN_PROGRESS = Gauge(
    "scim_requests_in_progress",
    "Requests being served",
    ["method", "path", "app_name"],
    multiprocess_mode="livesum",
)
_UNMEASURED = frozenset({METRICS_PATH, "/healthz", "/readyz"})


@cache
def _measures(method: str, path: str, status: int) -> tuple[Any, Any, Any | None]:
    """The children of the metrics for one route and status, looked up once."""
    labels = (method, path, str(status), APP_NAME)
    errors = REQUEST_ERRORS.labels(*labels) if status >= 500 else None
    return REQUESTS.labels(*labels), REQUEST_DURATION.labels(*labels), errors


@cache
def _in_progress(method: str, path: str) -> Any:
    return IN_PROGRESS.labels(method, path, APP_NAME)


def observed(
    headers: Callable[[Scope], Sequence[tuple[bytes, bytes]]],
) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware: give the request its id and echo it, add ``headers(scope)`` to the
    response, count and time it by route and status, and log it when it is done; one
    wrapper of ``send`` for all of it, as it runs for every request."""

    def middleware_for(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            identifier = _incoming_id(scope)
            added = [*headers(scope), (REQUEST_ID_HEADER, identifier.encode())]
            token = request_id.set(identifier)
            started = time.perf_counter()
            status = 500

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), *added]
                await send(message)

            measured = scope["path"] not in _UNMEASURED
            method = scope["method"]
            # A route's template, never the path itself: ids and made-up paths would make
            # a label value each.
            route = scope.get("path_template", "unrouted")
            if measured:
                _in_progress(method, route).inc()
            try:
                await app(scope, receive, send_with_headers)
            finally:
                duration = time.perf_counter() - started
                if measured:
                    _in_progress(method, route).dec()
                    count, timing, errors = _measures(method, route, status)
                    count.inc()
                    timing.observe(duration)
                    if errors is not None:
                        errors.inc()
                _done(scope, identifier, status, duration)
                request_id.reset(token)

        return middleware

    return middleware_for


@lru_cache(maxsize=4096)
def _tenant_requests(tenant_id: int, status_class: int) -> Any:
    """The counter of one tenant's requests of one status class, looked up once."""
    return TENANT_REQUESTS.labels(str(tenant_id), f"{status_class}xx")


def _done(scope: Any, identifier: str, status: int, duration: float) -> None:
    principal = (scope.get("state") or {}).get("principal")
    if principal is not None:
        _tenant_requests(principal.tenant.id, status // 100).inc()
    if access_logger.isEnabledFor(logging.INFO):  # off unless --access-log
        access_logger.info(
            "request",
            extra={
                "requestId": identifier,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "durationMs": round(duration * 1000, 2),
                "tenant": principal.tenant.id if principal is not None else None,
                "actor": getattr(principal, "actor", None),
            },
        )


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
