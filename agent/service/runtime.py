"""The daemon's shared state as its parts see it: a Protocol, so they need not import the daemon.

`agent.service.daemon.Daemon` owns this state and wires the parts; the heartbeat job and the
status reporter read and update it through `DaemonRuntime` (under `lock`, as each says). The
Protocol keeps the arrows one way: daemon → heartbeat/status → runtime, never back.
"""

from __future__ import annotations

import collections
import threading
from datetime import datetime
from typing import Protocol

from agent.config import AgentSettings
from agent.gpu import GpuBackend, GpuInfo, GpuSample
from agent.lease.state import AgentState, StateStore
from agent.lease.worker import LeaseWorker
from agent.link.client import CoordinatorClient
from agent.link.coordinator_health import CoordinatorHealth
from agent.link.units import RentableUnit


class HeartbeatFacts(Protocol):
    """What the status file shows of the heartbeat job."""

    @property
    def last_heartbeat_at(self) -> datetime | None: ...


class DaemonRuntime(Protocol):
    """The state one running agent shares between its scheduler, lease worker and views."""

    settings: AgentSettings
    store: StateStore
    lock: threading.RLock
    registered_event: threading.Event
    attest_requested: threading.Event  # a heartbeat answer asked for an attestation
    state: AgentState
    backend: GpuBackend | None
    gpus: list[GpuInfo]
    units: list[RentableUnit]
    samples: dict[str, GpuSample]
    client: CoordinatorClient | None
    worker: LeaseWorker | None
    instance_id: str
    coordinator_interval_s: float | None
    interval_s: float
    health: CoordinatorHealth
    counters: collections.Counter[str]
    xid_counts: collections.Counter[tuple[str, int]]  # (GPU uuid, Xid code): seen since start

    @property
    def heartbeat(self) -> HeartbeatFacts: ...

    def set_coordinator_interval(self, interval_s: float | None) -> None:
        """Take the coordinator's heartbeat interval (None: it named none)."""
