"""`GET /v1/marketplace/gpu/stream?ids=…`: server-sent events with the GPU objects of up to 200
GPUs, each sent again whenever it changed (status, health, metrics, booking).

What the console shows live. A status is derived from time as much as from writes (a host
falls silent, a booking runs out), so the stream reads the GPUs again each `TICK_S` and sends
what differs from what it sent last: a flip reaches the page within about a second, whatever
caused it. Each connection costs one indexed read per tick, on the shared threadpool; it ends
when the client goes away or the coordinator shuts down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.core.clock import Clock
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Gpu
from coordinator_stub.errors import NotFoundError, UnprocessableError
from coordinator_stub.market.gpu_view import gpu_details_object, gpu_rows
from coordinator_stub.routes.inputs import is_id_shaped

router = APIRouter(prefix="/v1/marketplace", tags=["marketplace_gpu"])

MAX_IDS = 200
TICK_S = 1.0
RETRY_MS = 2000  # how soon a browser reconnects after a drop
# A stream ends after this, and the browser's EventSource opens a new one RETRY_MS later: no
# connection is held forever by a tab nobody looks at, and a long-lived one picks up a
# restarted coordinator's state the same way.
MAX_STREAM_S = 600.0


def _read(db: Database, clock: Clock, settings: CoordinatorSettings, ids: list[str]) -> list[Any]:
    now = clock()
    with db.read() as session:
        rows = session.execute(gpu_rows(now, settings.offline_after_s).where(Gpu.id.in_(ids)))
        return [
            gpu_details_object(gpu, booking, status, seen, now=now)
            for gpu, booking, status, seen in rows
        ]


@router.get(
    "/gpu/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`event: gpu` lines"},
        404: {"description": "none of the GPUs exists"},
    },
)
async def stream_gpus(
    request: Request,
    ids: Annotated[str, Query(max_length=MAX_IDS * 40, description="comma-separated GPU ids")],
) -> StreamingResponse:
    """Each GPU object once, then again each time it changes (`event: gpu`, JSON data)."""
    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    if not wanted or len(wanted) > MAX_IDS or not all(is_id_shaped(i) for i in wanted):
        raise UnprocessableError(f"ids must be 1 to {MAX_IDS} comma-separated GPU ids")
    db: Database = request.app.state.db
    clock: Clock = request.app.state.clock
    settings: CoordinatorSettings = request.app.state.settings
    hub = request.app.state.lease_hub  # its `closing` is the shutdown signal
    first = await run_in_threadpool(_read, db, clock, settings, wanted)
    if not first:
        raise NotFoundError("none of these GPUs exists")
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + MAX_STREAM_S

    async def events() -> AsyncIterator[str]:
        sent: dict[str, str] = {}
        gpus = first
        yield f"retry: {RETRY_MS}\n\n"
        while True:
            for gpu in gpus:
                text = json.dumps(gpu, separators=(",", ":"))
                if sent.get(gpu["id"]) != text:
                    sent[gpu["id"]] = text
                    yield f"event: gpu\ndata: {text}\n\n"
            await asyncio.sleep(TICK_S)
            if hub.closing or loop.time() >= ends_at or await request.is_disconnected():
                return
            gpus = await run_in_threadpool(_read, db, clock, settings, wanted)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
