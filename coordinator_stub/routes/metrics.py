"""Prometheus metrics at `GET /metrics` (docs/api.md): one registry per app, never the global one.

Two sources:
- `MetricsMiddleware` (pure ASGI) counts requests by method, route template and status, and
  times them. The label is the route's template (`/v1/stake/{stake_id}`), never the raw path,
  so ids cannot blow up the series count; an unmatched path is `<unmatched>`.
- `MarketCollector` reads the database at scrape time (a read, never a write): GPUs by derived
  status, active bookings, the age of each miner's last heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import ACTIVE, Booking, Miner
from coordinator_stub.market.status import gpu_status, select_gpus

UNMATCHED = "<unmatched>"


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "coordinator_http_requests",
            "HTTP requests by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "coordinator_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            registry=registry,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request; adds nothing to the response."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

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
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


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
            "coordinator_gpus", "Live GPUs by derived status", labels=["status"]
        )
        bookings = GaugeMetricFamily(
            "coordinator_active_bookings", "Bookings active now (before their end_time)"
        )
        age = GaugeMetricFamily(
            "coordinator_miner_heartbeat_age_seconds",
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
        except SQLAlchemyError:
            return  # /health/ready reports the database; a scrape must not fail on it
        for status in ("available", "booked", "offline"):
            gpus.add_metric([status], float(counts.get(status, 0)))
        bookings.add_metric([], float(active or 0))
        for miner_id, seconds in ages:
            age.add_metric([miner_id], max(seconds, 0.0))
        yield gpus
        yield bookings
        yield age


def install(app: FastAPI, settings: CoordinatorSettings, clock: Callable[[], datetime]) -> None:
    """Give `app` its own registry, the request middleware and the `/metrics` route."""
    registry = CollectorRegistry(auto_describe=False)
    metrics = HttpMetrics(registry)
    registry.register(MarketCollector(lambda: getattr(app.state, "db", None), settings, clock))
    app.state.metrics_registry = registry
    app.add_middleware(MetricsMiddleware, metrics=metrics)

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
