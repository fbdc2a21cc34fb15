"""create_app(settings): the FastAPI application, its lifespan and the one DomainError handler."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from coordinator_stub import __version__
from coordinator_stub.auth import KeyCache, store_key, watch_revocations
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.clock import utcnow
from coordinator_stub.db.engine import Database
from coordinator_stub.db.migrate import prepare_for_serve
from coordinator_stub.errors import DomainError
from coordinator_stub.ledger.transfers import ensure_account
from coordinator_stub.miners.ingest import HeartbeatIngest
from coordinator_stub.miners.sweeper import Sweeper, sweep_tasks
from coordinator_stub.miners.wakeups import LeaseHub
from coordinator_stub.routes import ROUTERS, console, metrics, openapi
from coordinator_stub.routes.guard import RequestGuard, validation_errors


def bootstrap(db: Database, settings: CoordinatorSettings, now: datetime) -> None:
    """Create the bootstrap keys from settings (idempotent) and their subjects' accounts."""
    for entry in settings.parsed_bootstrap_keys():
        with db.write() as session:
            store_key(session, key=entry.key, role=entry.role, subject=entry.subject, now=now)
            ensure_account(session, entry.subject, now)


def create_app(
    settings: CoordinatorSettings | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
    run_sweeper: bool = True,
) -> FastAPI:
    """Build the app. Nothing touches the database until the lifespan starts."""
    settings = settings or CoordinatorSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        prepare_for_serve(db)  # SchemaVersionError: the database needs `migrate`
        bootstrap(db, settings, clock())
        app.state.db = db
        sweeper = Sweeper(db, settings, clock, sweep_tasks())
        app.state.sweeper = sweeper
        lease_hub = LeaseHub(db, settings)
        lease_hub.start()
        app.state.lease_hub = lease_hub
        ingest = HeartbeatIngest(db, offline_after_s=settings.offline_after_s)
        ingest.start()
        app.state.heartbeat_ingest = ingest
        stop_watch = threading.Event()
        key_watch = threading.Thread(
            target=watch_revocations,
            args=(app.state.key_cache, db, clock, stop_watch),
            name="key-revocations",
            daemon=True,
        )
        key_watch.start()
        if run_sweeper:
            sweeper.start()
        try:
            yield
        finally:
            if run_sweeper:
                sweeper.stop()
            lease_hub.stop()
            ingest.stop()
            stop_watch.set()
            key_watch.join(timeout=5)
            app.state.probe_executor.shutdown(wait=False, cancel_futures=True)
            db.dispose()

    app = FastAPI(
        title="AITBC coordinator",
        version=__version__,
        description="GPU marketplace, miner protocol, staking and ledger (docs/api.md).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.key_cache = KeyCache(ttl_s=settings.key_cache_ttl_s)
    # Health and metrics read the database on threads of their own, never behind the shared
    # worker pool a burst of requests can fill (routes/health.py).
    app.state.probe_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc.errors())})

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, _exc: DataError) -> JSONResponse:
        # SQLSTATE class 22: a value PostgreSQL cannot store or compare (a NUL character, a
        # string longer than its column). Bad input, not a server fault.
        return JSONResponse(
            status_code=422, content={"detail": "a value in the request cannot be stored"}
        )

    for router in ROUTERS:
        app.include_router(router)
    # Outermost but for the metrics: nothing reads, parses or authenticates a body it refuses.
    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
    )
    metrics.install(app, settings, clock)
    openapi.install(app)
    console.install(app)
    return app
