"""The agent daemon: probe, register, heartbeat, long-poll leases, talk to systemd, drain.

Threads and who owns what:

- the main thread handles signals (SIGTERM/SIGINT stop, SIGHUP reload), pings the systemd
  watchdog only while the heartbeat loop and the lease worker make progress, and drains;
- the APScheduler thread runs the heartbeat job (sample the GPUs, register when needed,
  heartbeat at min(config, coordinator) interval ±10 %), inline in its own daemon thread so an
  in-flight heartbeat never holds up exit;
- the long-poll thread keeps `GET /v1/miners/leases` open and hands new lease sets to
- the lease worker (`agent.lease_worker`), which alone runs hooks and changes leases.

The coordinator being down is normal weather: every call backs off with jitter and the agent
keeps its leases (ending them at `end_time`). SIGTERM deregisters (one try) and leaves leases
to the coordinator: a restart must not kill a tenant's work.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent import __version__, sdnotify
from agent.backoff import Backoff, RetrySchedule, is_refusal
from agent.config import AgentSettings, load_settings
from agent.coordinator import CoordinatorClient
from agent.errors import (
    AgentError,
    ConfigError,
    CoordinatorRejectedError,
    CoordinatorUnavailableError,
)
from agent.gpu import GpuBackend, GpuInfo, GpuSample, open_backend
from agent.lease_poll import LeasePoller
from agent.lease_worker import LeaseWorker
from agent.leases import GpuView, is_unhealthy
from agent.log import get_logger
from agent.registration import gpu_registration, miner_registration
from agent.state import AgentState, StateStore, utc_now, write_atomic
from agent.views import (
    RentableUnit,
    heartbeat_reports,
    metrics_rows,
    rentable_units,
    status_rows,
)
from agent.wire import AgentIdentity, HeartbeatRequest

log = get_logger("agent.daemon")

STATUS_FILE = "status.json"
STOP_DEADLINE_S = 4.0  # SIGTERM → exit 0 within 5 s, with a second to spare
JOB_ID = "heartbeat"


def _backoff_cap_s(heartbeat_interval_s: float) -> float:
    """Longest wait between tries while the coordinator is down: two heartbeats, 2..15 s."""
    return min(15.0, max(2.0, 2 * heartbeat_interval_s))


def _trouble_state(exc: CoordinatorUnavailableError | CoordinatorRejectedError) -> str:
    """`coordinator_state` after a failure; STATUS= shows it as "coordinator <this>"."""
    if not isinstance(exc, CoordinatorRejectedError):
        return "unreachable"
    if exc.status_code in (401, 403):
        return f"rejects our key ({exc.status_code})"
    if exc.status_code == 429:
        return "throttling us (429)"
    return f"rejects our requests ({exc.status_code})"


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


class Daemon:
    """One running agent. `run()` blocks until SIGTERM/SIGINT and returns the exit code."""

    def __init__(self, settings: AgentSettings, *, config_path: Path | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.store = StateStore(settings.agent.state_dir)
        self.lock = threading.RLock()
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.registered_event = threading.Event()
        self._reg_lock = threading.Lock()
        self._leaving = False
        self.state = AgentState()
        self.backend: GpuBackend | None = None
        self.gpus: list[GpuInfo] = []
        self.units: list[RentableUnit] = []  # what is registered, heartbeated and leased
        self.samples: dict[str, GpuSample] = {}
        self.client: CoordinatorClient | None = None
        self.worker: LeaseWorker | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.instance_id = uuid.uuid4().hex
        self.boot_id = _boot_id()
        self.seq = 0
        self.coordinator_interval_s: float | None = None
        self.interval_s = settings.agent.heartbeat_interval_s
        self.coordinator_state = "not contacted yet"
        self.last_heartbeat_at: datetime | None = None
        self._hb_backoff = Backoff(0.5, _backoff_cap_s(self.interval_s))
        self._hb_next_try = 0.0
        self._poll_backoff = Backoff(0.5, _backoff_cap_s(self.interval_s))
        self._hb_retry = RetrySchedule(self._hb_backoff)  # + minutes after a refusal (401, ...)
        self._poller: LeasePoller | None = None
        self._logged: set[str] = set()
        self.heartbeat_tick_at = time.monotonic()
        self._threads: list[threading.Thread] = []
        self._last_status = ""
        self.counters: collections.Counter[str] = collections.Counter()  # for agent.metrics
        self._stop_metrics: Callable[[], None] | None = None

    # -- views ------------------------------------------------------------------------------

    def gpu_views(self) -> dict[str, GpuView]:
        """What lease reconciliation knows about each local rentable unit (GPU or MIG)."""
        with self.lock:
            views = {}
            for unit in self.units:
                # A MIG instance: its own uuid, its parent's NVML index and health.
                sample = self.samples.get(unit.gpu_uuid)
                health = sample.health if sample is not None else None
                views[unit.uuid] = GpuView(
                    uuid=unit.uuid,
                    index=unit.index,
                    gpu_id=self.state.gpu_ids.get(unit.uuid),
                    healthy=health is None or not is_unhealthy(health.status.value),
                    health_reason=None if health is None else health.reason,
                )
            return views

    def _client(self) -> CoordinatorClient | None:
        return self.client if self.registered_event.is_set() else None

    def _new_client(self, settings: AgentSettings) -> CoordinatorClient:
        c = settings.coordinator
        return CoordinatorClient(
            c.url, api_key=c.resolve_api_key(), miner_id=c.miner_id, timeout_s=c.timeout_s
        )

    # -- lifecycle --------------------------------------------------------------------------

    def run(self) -> int:
        """Start everything, serve until asked to stop, drain; returns the exit code."""
        for noisy in ("httpx", "httpcore", "apscheduler"):
            # Per-request and per-job INFO lines would drown the agent's own events.
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.store.ensure_dir()
        self.state = self.store.load()
        self.client = self._new_client(self.settings)  # ConfigError (exit 78) before any work
        self.backend = open_backend(self.settings.gpu, self.settings.health)
        self.gpus = list(self.backend.gpus())
        self._sample()
        log.info(
            "agent_started",
            version=__version__,
            backend=self.backend.kind,
            gpus=len(self.gpus),
            units=len(self.units),
            state_dir=str(self.store.state_dir),
            coordinator=self.settings.coordinator.url,
        )
        self.worker = LeaseWorker(
            state=self.state,
            store=self.store,
            lock=self.lock,
            settings=lambda: self.settings.leases,
            client=self._client,
            gpus=self.gpu_views,
        )
        self.worker.resume()
        self._start_metrics()
        self._install_signals()
        try:
            self._heartbeat_tick()  # the first registration attempt, before READY=1
            self._start_threads()
            sdnotify.notify("READY=1\n" + self._status_line(force=True))
            log.info("agent_ready", status=self._last_status)
            self._main_loop()
        finally:
            self._drain()
        return 0

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            self.stop_event.set()

        def reload(signum: int, _frame: FrameType | None) -> None:
            self.reload_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _start_threads(self) -> None:
        assert self.worker is not None
        worker = threading.Thread(
            target=self.worker.run, args=(self.stop_event,), name="lease-worker", daemon=True
        )
        poll = LeasePoller(
            worker=self.worker,
            client=lambda: self.client,
            registered=self.registered_event,
            stop=self.stop_event,
            backoff=self._poll_backoff,
        )
        self._poller = poll
        poller = threading.Thread(target=poll.run, name="lease-poll", daemon=True)
        self._threads = [worker, poller]
        for thread in self._threads:
            thread.start()
        # DebugExecutor runs the job in the scheduler's own (daemon) thread: no pool whose
        # workers the interpreter would join at exit while a heartbeat waits on the network.
        self.scheduler = BackgroundScheduler(
            executors={"default": DebugExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.scheduler.add_job(
            self._heartbeat_guarded, trigger=self._trigger(), id=JOB_ID, name="heartbeat"
        )
        self.scheduler.start()

    def _trigger(self) -> IntervalTrigger:
        # IntervalTrigger adds uniform(0, jitter): 0.9·i + [0, 0.2·i] is i ± 10 %.
        i = self.interval_s
        return IntervalTrigger(seconds=0.9 * i, jitter=0.2 * i, timezone=UTC)

    def _set_interval(self) -> None:
        configured = self.settings.agent.heartbeat_interval_s
        coordinator = self.coordinator_interval_s
        interval = min(configured, coordinator) if coordinator else configured
        interval = max(0.5, interval)
        if abs(interval - self.interval_s) < 1e-9:
            return
        self.interval_s = interval
        self._hb_backoff.cap_s = self._poll_backoff.cap_s = _backoff_cap_s(interval)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.reschedule_job(JOB_ID, trigger=self._trigger())
        log.info("heartbeat_interval_changed", heartbeat_interval_s=interval)

    def _main_loop(self) -> None:
        watchdog_s = sdnotify.watchdog_interval_s()
        tick_s = min(1.0, watchdog_s) if watchdog_s else 1.0
        while not self.stop_event.wait(tick_s):
            if self.reload_event.is_set():
                self.reload_event.clear()
                self._reload()
            if watchdog_s and self._making_progress():
                sdnotify.notify("WATCHDOG=1")
            line = self._status_line()
            if line:
                sdnotify.notify(line)

    def _making_progress(self) -> bool:
        """True when the heartbeat loop and the lease worker both ticked recently enough."""
        now = time.monotonic()
        hb_budget = 2 * self.interval_s + 2 * self.settings.coordinator.timeout_s + 2
        hb_ok = now - self.heartbeat_tick_at <= hb_budget
        worker = self.worker
        worker_ok = worker is not None and (
            now - worker.tick_at <= 5.0
            or (worker.busy_until is not None and now < worker.busy_until)
        )
        return hb_ok and worker_ok

    def _drain(self) -> None:
        started = time.monotonic()
        sdnotify.notify("STOPPING=1")
        log.info("agent_stopping")
        self.stop_event.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        # One budget for the whole stop: deregistering may use what NVML and the threads leave.
        deadline = started + STOP_DEADLINE_S
        if self.client is not None:
            self.client.abort_long_poll()
            self._deregister(deadline=deadline - 1.0)
        if self.worker is not None:
            self.worker.poke()
        for thread in self._threads:
            thread.join(timeout=max(0.0, 0.5 - (time.monotonic() - started)))
        if self._stop_metrics is not None:
            self._stop_metrics()
        if self.backend is not None:
            self.backend.close(timeout_s=max(0.1, deadline - time.monotonic()))
        if self.client is not None:
            self.client.close()
        log.info("agent_stopped", took_s=round(time.monotonic() - started, 3))

    def _deregister(self, *, deadline: float) -> None:
        """One try to leave, finished by `deadline` (time.monotonic())."""
        # Hold the registration lock so a heartbeat job cannot re-register after we leave.
        if not self._reg_lock.acquire(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            log.warning("deregister_skipped", reason="registration in progress")
            return
        try:
            self._leaving = True
            miner_id = self.state.miner_id or self.settings.coordinator.miner_id
            if not self.registered_event.is_set() or miner_id is None or self.client is None:
                return
            timeout_s = min(self.settings.coordinator.timeout_s, deadline - time.monotonic())
            if timeout_s <= 0:
                log.warning("deregister_skipped", reason="no time left to stop within 5 s")
                return
            error: AgentError | None = None
            try:
                self.client.deregister(miner_id, timeout_s=timeout_s)
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                error = exc
            if error is None:
                log.info("miner_deregistered", miner_id=miner_id)
            else:
                log.warning("deregister_failed", miner_id=miner_id, error=str(error))
        finally:
            self._reg_lock.release()

    # -- reload -----------------------------------------------------------------------------

    def _reload(self) -> None:
        sdnotify.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        error: ConfigError | None = None
        try:
            new = load_settings(self.config_path) if self.config_path else self.settings
            # The key file's path may stay while its content changes (a rotated key): compare
            # the keys themselves too.
            same = new.coordinator == self.settings.coordinator and (
                self.client is None or self.client.uses_api_key(new.coordinator.resolve_api_key())
            )
            client = None if same else self._new_client(new)
        except ConfigError as exc:
            error = exc
        if error is not None:
            log.error("config_reload_failed", error=str(error))
            sdnotify.notify("READY=1\nSTATUS=config reload failed; running with the old config")
            return
        restart_needed = [
            name
            for name in ("gpu", "health", "metrics")
            if getattr(new, name) != getattr(self.settings, name)
        ]
        if new.agent.state_dir != self.settings.agent.state_dir:
            restart_needed.append("agent.state_dir")
        old_client = self.client
        with self.lock:
            self.settings = new
            if client is not None:
                self.client = client
                self.registered_event.clear()  # register with the new coordinator or key
                self._hb_next_try = 0.0
        if client is not None and old_client is not None:
            old_client.abort_long_poll()
            old_client.close()
        self._set_interval()
        self._retry_coordinator_now()
        if restart_needed:
            log.warning("config_reload_partial", restart_needed=restart_needed)
        log.info("config_reloaded")
        sdnotify.notify("READY=1\n" + self._status_line(force=True))

    # -- heartbeat --------------------------------------------------------------------------

    def _sample(self) -> None:
        assert self.backend is not None
        samples = self.backend.sample()
        # Fingerprints afresh, not the snapshot taken at start: a GPU lost at open() gets its
        # uuid (and its MIG instances) once the backend re-acquires it, and is offered then.
        gpus = list(self.backend.gpus())
        units = rentable_units(gpus, self.settings.gpu.exclude)
        with self.lock:
            self.gpus = gpus
            self.units = units
            self.samples = {s.uuid: s for s in samples if s.uuid is not None}

    def _heartbeat_guarded(self) -> None:
        try:
            self._heartbeat_tick()
        except Exception:  # the scheduler's tick guard: a bug must not stop heartbeats
            log.exception("heartbeat_tick_failed")
        finally:
            self.heartbeat_tick_at = time.monotonic()

    def _heartbeat_tick(self) -> None:
        if self.stop_event.is_set():
            return
        self._sample()
        if time.monotonic() < self._hb_next_try:
            self._write_status()
            return
        failure: CoordinatorUnavailableError | CoordinatorRejectedError | None = None
        try:
            if not self.registered_event.is_set():
                self._register()
            self._heartbeat()
        except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
            failure = exc
        if isinstance(failure, CoordinatorRejectedError) and failure.status_code == 404:
            # "miner not registered": deregistered, or the coordinator lost its database.
            log.warning("heartbeat_rejected", status_code=404, detail=failure.detail)
            self.registered_event.clear()
            failure = None
            try:
                self._register()
                self._heartbeat()
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                failure = exc
        if failure is None:
            self._hb_retry.success()
            self._hb_next_try = 0.0
            self.counters["heartbeats_sent_total"] += 1
        else:
            self.counters["heartbeat_failures_total"] += 1
            self._coordinator_trouble(failure)
        self._write_status()

    def _coordinator_trouble(
        self, exc: CoordinatorUnavailableError | CoordinatorRejectedError
    ) -> None:
        # Down (transport, 5xx): seconds. Refused (401, 403, other 4xx but 404/409/429): a
        # minute growing to ten, logged once per status, and STATUS= says why, since only the
        # operator can fix it (a SIGHUP with a new key retries at once). 429: its Retry-After.
        retry = self._hb_retry.failure(exc)
        self._hb_next_try = time.monotonic() + retry.delay_s
        self.coordinator_state = _trouble_state(exc)
        if isinstance(exc, CoordinatorRejectedError):
            if retry.first:
                (log.error if is_refusal(exc) else log.warning)(
                    "coordinator_rejected",
                    error=str(exc),
                    status_code=exc.status_code,
                    retry_in_s=round(retry.delay_s, 2),
                )
            return
        (log.warning if retry.first else log.debug)(
            "coordinator_unreachable", error=str(exc), retry_in_s=round(retry.delay_s, 2)
        )

    def _retry_coordinator_now(self) -> None:
        """After a reload: forget every backoff and try the coordinator now (a new key?)."""
        self._hb_retry.success()
        self._hb_next_try = 0.0
        if self._poller is not None:
            self._poller.retry_now()
        if self.worker is not None:
            self.worker.coordinator_recovered()  # owed acks, refused ones included, go now
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def _register(self) -> None:
        with self._reg_lock:
            if self._leaving or self.client is None:
                return
            client = self.client
            system = self.backend.system_info() if self.backend is not None else None
            answer = client.register_miner(
                miner_registration(self.units, system, self.settings.agent.region)
            )
            gpu_ids: dict[str, str] = {}
            for unit in self.units:
                spec = gpu_registration(unit, system, self.settings)
                gpu_ids[unit.uuid] = client.register_gpu(spec).gpu_id
            with self.lock:
                self.state.miner_id = answer.miner_id
                self.state.coordinator_url = client.base_url
                self.state.gpu_ids = gpu_ids
                assert self.worker is not None
                if not self.worker.save_state():
                    log.warning("registration_not_saved")
            self.coordinator_interval_s = answer.heartbeat_interval_s
            self._set_interval()
            self.worker.reset_version()
            self.registered_event.set()
            self.counters["registrations_total"] += 1
            log.info("miner_registered", miner_id=answer.miner_id, gpus=len(gpu_ids))

    def _register_new_units(self) -> None:
        """Register the units that appeared since the miner registered (a GPU lost at start
        and re-acquired since): idempotent by uuid, their ids kept in the state file."""
        with self.lock:
            new = [u for u in self.units if u.uuid not in self.state.gpu_ids]
        if not new:
            return
        with self._reg_lock:
            if self._leaving or self.client is None or not self.registered_event.is_set():
                return
            system = self.backend.system_info() if self.backend is not None else None
            for unit in new:
                gpu_id = self.client.register_gpu(
                    gpu_registration(unit, system, self.settings)
                ).gpu_id
                with self.lock:
                    self.state.gpu_ids[unit.uuid] = gpu_id
                    assert self.worker is not None
                    if not self.worker.save_state():
                        log.warning("registration_not_saved")
                log.info("gpu_registered", uuid=unit.uuid, gpu_id=gpu_id, index=unit.index)

    def _heartbeat(self) -> None:
        if not self.registered_event.is_set() or self.client is None:
            return
        self._register_new_units()
        assert self.worker is not None
        self.seq += 1
        with self.lock:
            reports = heartbeat_reports(self.units, self.samples, self.state.gpu_ids)
        leases = self.worker.report()
        request = HeartbeatRequest(
            inflight=sum(1 for lease in leases if lease.state in ("starting", "started")),
            status="ONLINE",
            agent=AgentIdentity(
                instance_id=self.instance_id,
                boot_id=self.boot_id,
                seq=self.seq,
                version=__version__,
            ),
            gpus=reports,
            leases=leases,
        )
        # The version held when asking: an answer below it means the coordinator was reset.
        since = self.worker.lease_version
        answer = self.client.heartbeat(request)
        self.last_heartbeat_at = utc_now()
        if self.coordinator_state != "ok":
            log.info("coordinator_reachable", previous=self.coordinator_state)
            self.worker.coordinator_recovered()
        self.coordinator_state = "ok"
        log.debug("heartbeat_sent", seq=self.seq, gpus=len(reports))
        if (
            answer.heartbeat_interval_s
            and answer.heartbeat_interval_s != self.coordinator_interval_s
        ):
            self.coordinator_interval_s = answer.heartbeat_interval_s
            self._set_interval()
        mine = set(self.state.gpu_ids.values())
        if mine.intersection(answer.ignored_gpus):
            # The coordinator does not know these ids (new database?): register them again.
            log.warning(
                "gpus_unknown_to_coordinator", gpu_ids=sorted(mine & set(answer.ignored_gpus))
            )
            self.registered_event.clear()
        if answer.leases is not None:
            self.worker.offer(answer.lease_version, answer.leases, since=since)

    # -- metrics ----------------------------------------------------------------------------

    def _start_metrics(self) -> None:
        where = self.settings.metrics.host_port
        if where is None:
            return
        from agent.metrics import serve

        self._stop_metrics = serve(*where, self._metrics_snapshot)
        log.info("metrics_listening", listen=self.settings.metrics.listen)

    def _metrics_snapshot(self) -> Any:
        from agent.metrics import Snapshot

        with self.lock:
            gpus = metrics_rows(self.gpus, self.samples)
        active, owed = self.worker.counts() if self.worker is not None else (0, 0)
        counters = dict(self.counters)
        if self.worker is not None:
            counters.update(self.worker.counters)
        return Snapshot(
            gpus=gpus,
            leases_active=active,
            acks_owed=owed,
            coordinator_up=self.coordinator_state == "ok",
            counters=counters,
        )

    # -- status -----------------------------------------------------------------------------

    def _status_line(self, *, force: bool = False) -> str:
        """`STATUS=...` when it changed since the last one sent (or `force`), else ""."""
        active = self.worker.counts()[0] if self.worker is not None else 0
        unhealthy = sum(1 for s in self.samples.values() if is_unhealthy(s.health.status.value))
        text = f"{len(self.units)} GPUs, {active} leased"
        if unhealthy:
            text += f", {unhealthy} unhealthy"
        text += f", coordinator {self.coordinator_state}"
        if self.worker is not None and self.worker.state_error:
            text += ", state file not writable"
        if text == self._last_status and not force:
            return ""
        self._last_status = text
        return f"STATUS={text}"

    def _write_status(self) -> None:
        """Write status.json for `aitbc-agent status` (not durable: it is only a view)."""
        with self.lock:
            gpus = status_rows(self.units, self.samples, self.state.gpu_ids)
        doc = {
            "pid": os.getpid(),
            "version": __version__,
            "instance_id": self.instance_id,
            "written_at": utc_now().isoformat(),
            "coordinator_url": self.settings.coordinator.url,
            "coordinator_state": self.coordinator_state,
            "registered": self.registered_event.is_set(),
            "last_heartbeat_at": None
            if self.last_heartbeat_at is None
            else self.last_heartbeat_at.isoformat(),
            "heartbeat_interval_s": self.interval_s,
            "gpus": gpus,
        }
        error: AgentError | None = None
        try:
            write_atomic(
                self.store.state_dir / STATUS_FILE,
                json.dumps(doc, indent=1).encode(),
                durable=False,
            )
        except AgentError as exc:
            error = exc
        if error is not None and "status" not in self._logged:
            self._logged.add("status")
            log.warning("status_write_failed", error=str(error))


def run(settings: AgentSettings, *, config_path: Path | None = None) -> int:
    """`aitbc-agent run`: the daemon's entry point; returns the process exit code."""
    return Daemon(settings, config_path=config_path).run()
