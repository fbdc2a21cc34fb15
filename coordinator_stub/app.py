"""create_app(settings): the FastAPI application, its lifespan and the one DomainError handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from coordinator_stub import bookkeeping, metrics, openapi
from coordinator_stub.auth import KeyCache
from coordinator_stub.clock import utcnow
from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db import Database
from coordinator_stub.errors import DomainError
from coordinator_stub.lease_wakeups import LeaseHub
from coordinator_stub.routes import ROUTERS
from coordinator_stub.sweeper import Sweeper


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
        db.create_schema()
        bookkeeping.bootstrap(db, settings, clock())
        app.state.db = db
        sweeper = Sweeper(db, settings, clock, bookkeeping.sweep_tasks())
        app.state.sweeper = sweeper
        lease_hub = LeaseHub(db, settings)
        lease_hub.start()
        app.state.lease_hub = lease_hub
        if run_sweeper:
            sweeper.start()
        try:
            yield
        finally:
            if run_sweeper:
                sweeper.stop()
            lease_hub.stop()
            db.dispose()

    app = FastAPI(
        title="AITBC coordinator",
        version="0.1.0",
        description="GPU marketplace, miner protocol, staking and ledger (SPEC §3).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.key_cache = KeyCache()

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail})

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, _exc: DataError) -> JSONResponse:
        # SQLSTATE class 22: a value PostgreSQL cannot store or compare (a NUL character, a
        # string longer than its column). Bad input, not a server fault.
        return JSONResponse(
            status_code=422, content={"detail": "a value in the request cannot be stored"}
        )

    for router in ROUTERS:
        app.include_router(router)
    metrics.install(app, settings, clock)
    openapi.install(app)
    return app
