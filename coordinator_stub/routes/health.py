"""Liveness and readiness (docs/api.md#health), answered even when the server is busy.

These routes are `async`: a sync route would queue behind the shared worker-thread pool, which
a burst of long-poll answers or slow requests can fill, and a health check that waits there
reports a healthy server as dead. The one that needs the database asks it on the app's own
probe thread (`app.state.probe_executor`), never on the shared pool.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from coordinator_stub.db.engine import Database
from coordinator_stub.deps import DbDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(db: DbDep) -> dict[str, Any]:
    return {"status": "ok", "service": "aitbc-coordinator", "database": db.engine.dialect.name}


@router.get("/health/live")
async def health_live() -> dict[str, str]:
    return {"status": "ok"}


def _database_answers(db: Database) -> bool:
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


@router.get("/health/ready", responses={503: {"description": "the database does not answer"}})
async def health_ready(request: Request, db: DbDep) -> JSONResponse:
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(request.app.state.probe_executor, _database_answers, db):
        return JSONResponse(status_code=503, content={"status": "unavailable", "database": "down"})
    return JSONResponse(status_code=200, content={"status": "ok", "database": "up"})
