"""The heartbeat job's work: sample the GPUs, register when needed, heartbeat, apply the answer.

One `tick()` per scheduler run, on the APScheduler thread (the daemon guards it and writes the
status file after it). It works on the daemon's shared state (units, samples, the state file's
ids, the client) under the daemon's lock, and owns what registering needs to itself: the lock
that keeps a heartbeat from registering again once SIGTERM deregistered, and the heartbeat's
identity (`boot_id`, `seq`).

A heartbeat's answer may change the interval (the daemon reschedules), name GPU ids the
coordinator does not know (register again on the next tick), and carry the lease set, offered
to the lease worker with the version held when asking, so an answer below it reads as a
coordinator reset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.errors import AgentError, CoordinatorRejectedError, CoordinatorUnavailableError
from agent.gpu import GpuInfo, GpuSample
from agent.lease.state import utc_now
from agent.link.registration import gpu_registration, miner_registration
from agent.link.units import heartbeat_reports, rentable_units
from agent.link.wire import AgentIdentity, HeartbeatRequest
from agent.log import get_logger
from agent.service.runtime import DaemonRuntime

log = get_logger("agent.daemon")  # the daemon's events, under the name operators filter by


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def log_health_changes(
    before: Mapping[str, GpuSample],
    after: Mapping[str, GpuSample],
    gpus: Mapping[str, GpuInfo],
) -> None:
    """One log line per GPU whose health changed since the previous sample — the way an
    operator sees an Xid 79 and the recovery after it — with what identifies the card."""
    for uuid, sample in after.items():
        old = before.get(uuid)
        was = "ok" if old is None else old.health.status.value
        now = sample.health.status.value
        if was == now:
            continue
        info = gpus.get(uuid)
        fields: dict[str, Any] = {
            "uuid": uuid,
            "index": sample.index,
            "pci_bus_id": None if info is None else info.pci_bus_id,
            "health": now,
            "previous": was,
            "reason": sample.health.reason,
            "xids": list(sample.xid_events),
        }
        if now == "ok":
            log.info("gpu_recovered", **fields)
        elif now == "degraded":
            log.warning("gpu_health_changed", **fields)
        else:
            log.error("gpu_health_changed", **fields)


class Heartbeat:
    """Registration and heartbeats of one daemon's miner and its rentable units."""

    def __init__(self, daemon: DaemonRuntime) -> None:
        self._d = daemon
        self._reg_lock = threading.Lock()
        self._leaving = False
        self.boot_id = _boot_id()
        self.seq = 0
        self.last_heartbeat_at: datetime | None = None

    def sample(self) -> None:
        """Read the GPUs: fingerprints, rentable units and the latest samples."""
        d = self._d
        assert d.backend is not None
        samples = d.backend.sample()
        # Fingerprints afresh, not the snapshot taken at start: a GPU lost at open() gets its
        # uuid (and its MIG instances) once the backend re-acquires it, and is offered then.
        gpus = list(d.backend.gpus())
        units = rentable_units(gpus, d.settings.gpu.exclude)
        with d.lock:
            previous = d.samples
            d.gpus = gpus
            d.units = units
            d.samples = {s.uuid: s for s in samples if s.uuid is not None}
            for uuid, s in d.samples.items():
                d.xid_counts.update((uuid, code) for code in s.xid_events)
        log_health_changes(previous, d.samples, {g.uuid: g for g in gpus if g.uuid is not None})

    def tick(self) -> None:
        """Sample, then (unless backing off) register when needed and heartbeat."""
        d = self._d
        self.sample()
        if d.health.waiting():
            return
        failure: CoordinatorUnavailableError | CoordinatorRejectedError | None = None
        try:
            if not d.registered_event.is_set():
                self.register()
            self.send()
        except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
            failure = exc
        if isinstance(failure, CoordinatorRejectedError) and failure.status_code == 404:
            # "miner not registered": deregistered, or the coordinator lost its database.
            log.warning("heartbeat_rejected", status_code=404, detail=failure.detail)
            d.registered_event.clear()
            failure = None
            try:
                self.register()
                self.send()
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                failure = exc
        if failure is None:
            d.health.reset()
            d.counters["heartbeats_sent_total"] += 1
        else:
            d.counters["heartbeat_failures_total"] += 1
            d.health.failed(failure)

    def register(self) -> None:
        """Register the miner and each of its units; save their ids; let the long poll start."""
        d = self._d
        with self._reg_lock:
            if self._leaving or d.client is None:
                return
            client = d.client
            system = d.backend.system_info() if d.backend is not None else None
            answer = client.register_miner(
                miner_registration(d.units, system, d.settings.agent.region)
            )
            gpu_ids: dict[str, str] = {}
            for unit in d.units:
                spec = gpu_registration(unit, system, d.settings)
                gpu_ids[unit.uuid] = client.register_gpu(spec).gpu_id
            with d.lock:
                d.state.miner_id = answer.miner_id
                d.state.coordinator_url = client.base_url
                d.state.gpu_ids = gpu_ids
                assert d.worker is not None
                if not d.worker.save_state():
                    log.warning("registration_not_saved")
            d.set_coordinator_interval(answer.heartbeat_interval_s)
            d.worker.reset_version()
            d.registered_event.set()
            d.counters["registrations_total"] += 1
            log.info("miner_registered", miner_id=answer.miner_id, gpus=len(gpu_ids))

    def register_new_units(self) -> None:
        """Register the units that appeared since the miner registered (a GPU lost at start
        and re-acquired since): idempotent by uuid, their ids kept in the state file."""
        d = self._d
        with d.lock:
            new = [u for u in d.units if u.uuid not in d.state.gpu_ids]
        if not new:
            return
        with self._reg_lock:
            if self._leaving or d.client is None or not d.registered_event.is_set():
                return
            system = d.backend.system_info() if d.backend is not None else None
            for unit in new:
                gpu_id = d.client.register_gpu(gpu_registration(unit, system, d.settings)).gpu_id
                with d.lock:
                    d.state.gpu_ids[unit.uuid] = gpu_id
                    assert d.worker is not None
                    if not d.worker.save_state():
                        log.warning("registration_not_saved")
                log.info("gpu_registered", uuid=unit.uuid, gpu_id=gpu_id, index=unit.index)

    def send(self) -> None:
        """One heartbeat (when registered), and what its answer asks for."""
        d = self._d
        if not d.registered_event.is_set() or d.client is None:
            return
        self.register_new_units()
        assert d.worker is not None
        worker = d.worker
        self.seq += 1
        with d.lock:
            reports = heartbeat_reports(d.units, d.samples, d.state.gpu_ids)
        leases = worker.report()
        request = HeartbeatRequest(
            inflight=sum(1 for lease in leases if lease.state in ("starting", "started")),
            status="ONLINE",
            agent=AgentIdentity(
                instance_id=d.instance_id,
                boot_id=self.boot_id,
                seq=self.seq,
                version=__version__,
            ),
            gpus=reports,
            leases=leases,
        )
        # The version held when asking: an answer below it means the coordinator was reset.
        since = worker.lease_version
        answer = d.client.heartbeat(request)
        self.last_heartbeat_at = utc_now()
        d.health.answered(worker.coordinator_recovered)
        log.debug("heartbeat_sent", seq=self.seq, gpus=len(reports))
        if answer.heartbeat_interval_s and answer.heartbeat_interval_s != d.coordinator_interval_s:
            d.set_coordinator_interval(answer.heartbeat_interval_s)
        mine = set(d.state.gpu_ids.values())
        if mine.intersection(answer.ignored_gpus):
            # The coordinator does not know these ids (new database?): register them again.
            log.warning(
                "gpus_unknown_to_coordinator", gpu_ids=sorted(mine & set(answer.ignored_gpus))
            )
            d.registered_event.clear()
        if answer.attest_requested:
            d.attest_requested.set()
        if answer.leases is not None:
            worker.offer(answer.lease_version, answer.leases, since=since)

    def deregister(self, *, deadline: float) -> None:
        """One try to leave, finished by `deadline` (time.monotonic())."""
        d = self._d
        # Hold the registration lock so a heartbeat job cannot re-register after we leave.
        if not self._reg_lock.acquire(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            log.warning("deregister_skipped", reason="registration in progress")
            return
        try:
            self._leaving = True
            miner_id = d.state.miner_id or d.settings.coordinator.miner_id
            if not d.registered_event.is_set() or miner_id is None or d.client is None:
                return
            timeout_s = min(d.settings.coordinator.timeout_s, deadline - time.monotonic())
            if timeout_s <= 0:
                log.warning("deregister_skipped", reason="no time left to stop within 5 s")
                return
            error: AgentError | None = None
            try:
                d.client.deregister(miner_id, timeout_s=timeout_s)
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                error = exc
            if error is None:
                log.info("miner_deregistered", miner_id=miner_id)
            else:
                log.warning("deregister_failed", miner_id=miner_id, error=str(error))
        finally:
            self._reg_lock.release()
