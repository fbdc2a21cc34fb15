"""Lease reconciliation (pure): desired leases vs held leases → what to do.

No I/O and no clock of its own: the caller passes `now`, the held leases from the state file,
the desired leases from the coordinator (or None when it cannot be reached) and what it knows
of its GPUs, and gets back a list of actions to carry out in order.

Rules (docs/miner-protocol.md):
- a new active lease starts when its GPU is present and healthy, else it is rejected;
- a held lease stops when the coordinator marks it ended or no longer lists it (release);
- a held lease expires at its `end_time` — never earlier — whatever the coordinator says or
  whether it can be reached at all;
- a lease that has stopped or was rejected never starts again (its tombstone stays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from agent.gpu import GpuSample
from agent.lease.state import HeldLease
from agent.link.units import RentableUnit
from agent.link.wire import DesiredLease

StopReason = Literal["released", "withdrawn", "expired"]


@dataclass(frozen=True, slots=True)
class GpuView:
    """What reconciliation needs to know about one local GPU."""

    uuid: str
    index: int
    gpu_id: str | None
    healthy: bool
    health_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Start:
    """Run on_start for a new lease (record `starting` first)."""

    lease: DesiredLease
    gpu: GpuView


@dataclass(frozen=True, slots=True)
class Reject:
    """Ack `rejected` without running any hook: the GPU is missing or unhealthy."""

    lease: DesiredLease
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Run on_end for a held lease (record `stopping` first); ack `stopped` at `generation`."""

    booking_id: str
    reason: StopReason
    generation: int


@dataclass(frozen=True, slots=True)
class Update:
    """A held active lease changed generation or end time: record it, ack `started` again."""

    lease: DesiredLease


@dataclass(frozen=True, slots=True)
class Reack:
    """A lease already stopped locally: the coordinator ended it at a newer generation."""

    booking_id: str
    generation: int


Action = Start | Reject | Stop | Update | Reack

_UNHEALTHY = ("unhealthy", "lost")


def plan(
    held: Mapping[str, HeldLease],
    desired: Sequence[DesiredLease] | None,
    gpus: Mapping[str, GpuView],
    now: datetime,
) -> list[Action]:
    """The actions that bring the host in line with `desired` at `now`.

    `desired` None means "the coordinator is not reachable": only local expiry applies.
    """
    actions: list[Action] = []
    stopping: set[str] = set()
    if desired is not None:
        wanted = {d.booking_id: d for d in desired}
        for d in desired:
            mine = held.get(d.booking_id)
            if d.state == "ended":
                if mine is None:
                    continue
                if mine.active:
                    actions.append(Stop(d.booking_id, "released", d.generation))
                    stopping.add(d.booking_id)
                elif (
                    mine.phase == "stopped"
                    and mine.ack_state == "stopped"
                    and (mine.ack_generation or 0) < d.generation
                ):
                    actions.append(Reack(d.booking_id, d.generation))
                continue
            if mine is not None:
                if mine.active and now < mine.end_time and _changed(mine, d):
                    actions.append(Update(d))
                continue
            if now >= d.end_time:
                continue  # it ended before we saw it; nothing to start or stop
            actions.append(_start_or_reject(d, gpus))
        for booking_id, mine in held.items():
            if mine.active and booking_id not in wanted:
                actions.append(Stop(booking_id, "withdrawn", mine.generation))
                stopping.add(booking_id)
    for booking_id, mine in held.items():
        if mine.active and booking_id not in stopping and now >= mine.end_time:
            actions.append(Stop(booking_id, "expired", mine.generation))
    return actions


def _changed(mine: HeldLease, d: DesiredLease) -> bool:
    return d.generation != mine.generation or d.end_time != mine.end_time


def _start_or_reject(d: DesiredLease, gpus: Mapping[str, GpuView]) -> Action:
    gpu = gpus.get(d.gpu_uuid or "")
    if gpu is None and d.gpu_id is not None:
        gpu = next((g for g in gpus.values() if g.gpu_id == d.gpu_id), None)
    if gpu is None:
        return Reject(d, f"gpu {d.gpu_uuid or d.gpu_id} is not present on this host")
    if not gpu.healthy:
        return Reject(d, f"gpu {gpu.uuid} is unhealthy: {gpu.health_reason or 'unknown'}")
    return Start(d, gpu)


def next_expiry(held: Mapping[str, HeldLease]) -> datetime | None:
    """The earliest `end_time` of the leases still active, or None."""
    ends = [lease.end_time for lease in held.values() if lease.active]
    return min(ends) if ends else None


def is_unhealthy(health: str) -> bool:
    """True for the health values that make a GPU unrentable."""
    return health in _UNHEALTHY


def gpu_views(
    units: Sequence[RentableUnit],
    samples: Mapping[str, GpuSample],
    gpu_ids: Mapping[str, str],
) -> dict[str, GpuView]:
    """What lease reconciliation knows about each unit, by unit uuid; a MIG instance has its
    own uuid and its parent's NVML index and health."""
    views = {}
    for unit in units:
        sample = samples.get(unit.gpu_uuid)
        health = sample.health if sample is not None else None
        views[unit.uuid] = GpuView(
            uuid=unit.uuid,
            index=unit.index,
            gpu_id=gpu_ids.get(unit.uuid),
            healthy=health is None or not is_unhealthy(health.status.value),
            health_reason=None if health is None else health.reason,
        )
    return views
