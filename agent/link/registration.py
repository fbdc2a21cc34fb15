"""What the agent tells the coordinator about its host and rentable units when it registers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.config import AgentSettings
from agent.gpu import SystemInfo
from agent.link.units import RentableUnit
from agent.link.wire import GpuRegistration, MinerRegisterRequest


def miner_registration(
    units: Sequence[RentableUnit], system: SystemInfo | None, region: str | None
) -> MinerRegisterRequest:
    """`POST /v1/miners/register` body: the host's rentable units as capabilities."""
    capabilities: dict[str, Any] = {
        "gpus": [
            {
                "index": u.index,
                "uuid": u.uuid,
                "name": u.name,
                "memory_mib": u.memory_total_mib,
                "compute_capability": u.compute_capability,
                **({"parent_uuid": u.gpu_uuid, "mig_profile": u.mig_profile} if u.is_mig else {}),
            }
            for u in units
        ],
        "driver_version": None if system is None else system.driver_version,
        "cuda": None if system is None else system.cuda_driver_version,
    }
    return MinerRegisterRequest(capabilities=capabilities, concurrency=len(units), region=region)


def gpu_registration(
    unit: RentableUnit, system: SystemInfo | None, settings: AgentSettings
) -> GpuRegistration:
    """`POST /v1/marketplace/gpu/register` `gpu` object for one unit (idempotent by uuid).

    A MIG instance registers under its own uuid and memory, with its parent's compute
    capability and driver; its list price is `[gpu.prices]` under its own name
    ("<model> MIG <profile>"), else `price_per_hour`.
    """
    memory_mib = unit.memory_total_mib
    return GpuRegistration(
        name=unit.name or "unknown GPU",
        memory_gb=round((memory_mib or 0) / 1024),
        memory_mib=memory_mib,
        uuid=unit.uuid,
        compute_capability=unit.compute_capability,
        driver_version=None if system is None else system.driver_version,
        cuda_version=None if system is None else system.cuda_driver_version,
        price_per_hour=settings.gpu.price_for(unit.name),
        region=settings.agent.region,
    )
