"""Prometheus metrics at `GET /metrics` (names in docs/metrics.md) and the access log.

One registry per app, never the global one. Three sources:
- `RequestObserver` (pure ASGI) counts requests by method, route template and status, times
  them, and writes the access log line. The label is the route's template
  (`/v1/stake/{stake_id}`), never the raw path, so ids cannot blow up the series count; an
  unmatched path is `<unmatched>`.
- `MarketCollector` reads the database at scrape time (a read, never a write): GPUs by derived
  status, miners online and offline, active bookings, the age of each miner's last heartbeat.
- `core.events` counts the events this process logged (bookings, registrations, refused keys).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aitbc_common.logs import get_logger
from coordinator_stub import __version__
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core import events
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import ACTIVE, Booking, Miner
from coordinator_stub.market.status import gpu_status, select_gpus

UNMATCHED = "<unmatched>"
access_log = get_logger("coordinator.access")
# The routes every host calls every few seconds, and the probes: their successful requests
# are logged at debug (`COORDINATOR_LOG_LEVEL=debug` shows them). At info, 10 000 hosts would
# write ~1000 lines a second that say nothing; their failures still log at info or error.
QUIET_ROUTES = frozenset(
    {
        "/v1/miners/heartbeat",
        "/v1/miners/leases",
        "/metrics",
        "/health",
        "/health/live",
        "/health/ready",
    }
)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "aitbc_coordinator_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "aitbc_coordinator_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=registry,
        )


class RequestObserver:
    """Counts, times and (with `access_log`) logs every HTTP request; changes no response."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app raises before answering

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(elapsed)
            if self.access_log:
                _log_request(scope, method, template, status, elapsed)


def _log_request(scope: Scope, method: str, route: str, status: int, elapsed: float) -> None:
    if status >= 500:
        emit = access_log.error
    elif status < 400 and route in QUIET_ROUTES:
        emit = access_log.debug
    else:
        emit = access_log.info
    caller = scope.get("state", {}).get("caller")  # set by deps once a key was accepted
    client = scope.get("client")
    emit(
        "http_request",
        method=method,
        route=route,
        path=str(scope.get("path", ""))[:256],
        status=status,
        duration_ms=round(elapsed * 1000, 2),
        role=None if caller is None else caller.role,
        subject=None if caller is None else caller.subject,
        client=client[0] if client else None,
    )


class MarketCollector(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def __init__(
        self,
        db: Callable[[], Database | None],
        settings: CoordinatorSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    def describe(self) -> list[Metric]:
        return []  # collected lazily; nothing to read at registration time

    def collect(self) -> Iterator[Metric]:
        db = self._db()
        if db is None:  # before the lifespan started
            return
        now = self._clock()
        off = self._settings.offline_after_s
        gpus = GaugeMetricFamily(
            "aitbc_coordinator_gpus", "Listed GPUs by derived status", labels=["status"]
        )
        miners = GaugeMetricFamily(
            "aitbc_coordinator_miners",
            "Registered miners by liveness (offline: no heartbeat within offline_after_s)",
            labels=["state"],
        )
        bookings = GaugeMetricFamily(
            "aitbc_coordinator_bookings_active", "Bookings active now (before their end_time)"
        )
        age = GaugeMetricFamily(
            "aitbc_coordinator_miner_heartbeat_age_seconds",
            "Seconds since each registered miner's last heartbeat",
            labels=["miner_id"],
        )
        try:
            with db.read() as session:
                live = select_gpus(now, off).with_only_columns(gpu_status(now, off)).subquery()
                counts: dict[str, int] = dict(
                    session.execute(
                        select(live.c.status, func.count()).group_by(live.c.status)
                    ).all()
                )
                active = session.scalar(
                    select(func.count())
                    .select_from(Booking)
                    .where(Booking.status == ACTIVE, Booking.end_time > now)
                )
                beats = session.execute(
                    select(Miner.id, Miner.last_heartbeat_at).where(
                        Miner.deregistered_at.is_(None), Miner.last_heartbeat_at.is_not(None)
                    )
                ).all()
                ages = [(miner_id, (now - at).total_seconds()) for miner_id, at in beats if at]
                registered = (
                    session.scalar(
                        select(func.count())
                        .select_from(Miner)
                        .where(Miner.deregistered_at.is_(None))
                    )
                    or 0
                )
        except SQLAlchemyError:
            return  # /health/ready reports the database; a scrape must not fail on it
        for status in ("available", "booked", "offline"):
            gpus.add_metric([status], float(counts.get(status, 0)))
        bookings.add_metric([], float(active or 0))
        online = sum(1 for _miner, seconds in ages if seconds <= off)
        miners.add_metric(["online"], float(online))
        miners.add_metric(["offline"], float(registered - online))
        for miner_id, seconds in ages:
            age.add_metric([miner_id], max(seconds, 0.0))
        yield gpus
        yield miners
        yield bookings
        yield age


class ProcessCollector(Collector):
    """What this process knows without the database: its version, events and open polls."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        db: Database | None = getattr(self._app.state, "db", None)  # set by the lifespan
        info = InfoMetricFamily("aitbc_coordinator", "The coordinator's version and database")
        kind = "" if db is None else ("sqlite" if db.is_sqlite else "postgresql")
        info.add_metric([], {"version": __version__, "database": kind})
        yield info
        logged = CounterMetricFamily(
            "aitbc_coordinator_events",
            "Events this process logged, by event (docs/metrics.md lists them)",
            labels=["event"],
        )
        for event, n in events.counts().items():
            logged.add_metric([event], float(n))
        yield logged
        sweeper = getattr(self._app.state, "sweeper", None)
        if sweeper is not None:
            yield GaugeMetricFamily(
                "aitbc_coordinator_sweeper_leading",
                "1 when this process runs the background sweeps (one per PostgreSQL database)",
                value=1.0 if sweeper.leadership.leading else 0.0,
            )
        hub = getattr(self._app.state, "lease_hub", None)
        if hub is not None:
            yield GaugeMetricFamily(
                "aitbc_coordinator_lease_polls_open",
                "Lease long polls this process holds open (one client socket each)",
                value=float(hub.open_polls()),
            )


def install(app: FastAPI, settings: CoordinatorSettings, clock: Callable[[], datetime]) -> None:
    """Give `app` its own registry, the request middleware and the `/metrics` route."""
    # No `_created` series beside each counter and histogram: nothing reads them, and they
    # double the series count. (A process-wide switch; the coordinator owns its process.)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    registry = CollectorRegistry(auto_describe=False)
    metrics = HttpMetrics(registry)

    def db() -> Database | None:
        return getattr(app.state, "db", None)  # set by the lifespan

    registry.register(MarketCollector(db, settings, clock))
    registry.register(ProcessCollector(app))
    app.state.metrics_registry = registry
    app.add_middleware(RequestObserver, metrics=metrics, access_log=settings.access_log)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    )
    async def get_metrics(request: Request) -> Response:
        """Prometheus text exposition."""
        loop = asyncio.get_running_loop()
        registry = request.app.state.metrics_registry
        # On the probe threads (routes/health.py): a scrape never waits behind the shared pool.
        body = await loop.run_in_executor(
            request.app.state.probe_executor, generate_latest, registry
        )
        return Response(content=body, media_type=CONTENT_TYPE_LATEST)
