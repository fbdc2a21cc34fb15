"""What the agent tells the coordinator about its host and GPUs when it registers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.config import AgentSettings
from agent.gpu import GpuInfo, SystemInfo
from agent.wire import GpuRegistration, MinerRegisterRequest


def miner_registration(
    gpus: Sequence[GpuInfo], system: SystemInfo | None, region: str | None
) -> MinerRegisterRequest:
    """`POST /v1/miners/register` body: the host's GPUs as capabilities."""
    capabilities: dict[str, Any] = {
        "gpus": [
            {
                "index": g.index,
                "uuid": g.uuid,
                "name": g.name,
                "memory_mib": g.memory_total_mib,
                "compute_capability": g.compute_capability,
            }
            for g in gpus
        ],
        "driver_version": None if system is None else system.driver_version,
        "cuda": None if system is None else system.cuda_driver_version,
    }
    return MinerRegisterRequest(capabilities=capabilities, concurrency=len(gpus), region=region)


def gpu_registration(
    gpu: GpuInfo, system: SystemInfo | None, settings: AgentSettings
) -> GpuRegistration:
    """`POST /v1/marketplace/gpu/register` `gpu` object for one GPU (idempotent by uuid)."""
    assert gpu.uuid is not None
    memory_mib = gpu.memory_total_mib
    return GpuRegistration(
        name=gpu.name or "unknown GPU",
        memory_gb=round((memory_mib or 0) / 1024),
        memory_mib=memory_mib,
        uuid=gpu.uuid,
        compute_capability=gpu.compute_capability,
        driver_version=None if system is None else system.driver_version,
        cuda_version=None if system is None else system.cuda_driver_version,
        price_per_hour=settings.gpu.price_for(gpu.name),
        region=settings.agent.region,
    )
