"""One router per resource; `ROUTERS` is what create_app() mounts, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from coordinator_stub.routes import (
    accounts,
    admin,
    attestations,
    gpu_stream,
    health,
    marketplace,
    marketplace_gpu,
    miners,
    pricing,
    staking,
)

ROUTERS: list[APIRouter] = [
    health.router,
    admin.router,
    accounts.router,
    miners.router,
    attestations.router,
    gpu_stream.router,  # before marketplace_gpu: /gpu/stream is not a /gpu/{gpu_id}
    marketplace_gpu.router,
    pricing.router,
    marketplace.router,
    staking.router,
]
