"""The agent daemon: probe, register, heartbeat, long-poll leases, talk to systemd, drain.

Threads and who owns what:

- the main thread handles signals (SIGTERM/SIGINT stop, SIGHUP reload), pings the systemd
  watchdog only while the heartbeat loop and the lease worker make progress, and drains;
- the APScheduler thread runs the heartbeat job (`agent.service.heartbeat`: sample the GPUs,
  register when needed, heartbeat at min(config, coordinator) interval ±10 %), inline in its own
  daemon thread so an in-flight heartbeat never holds up exit;
- the long-poll thread (`agent.lease.poll`) keeps `GET /v1/miners/leases` open and hands new
  lease sets to
- the lease worker (`agent.lease.worker`), which alone runs hooks and changes leases.

This module is the wiring: it builds those, holds the state they share (under `lock`), and owns
the schedule, reload and drain. How the coordinator is doing is `agent.link.coordinator_health`;
STATUS=, status.json and the metrics snapshot are `agent.service.status`.

The coordinator being down is normal weather: every call backs off with jitter and the agent
keeps its leases (ending them at `end_time`). SIGTERM deregisters (one try) and leaves leases
to the coordinator: a restart must not kill a tenant's work.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent import __version__
from agent.config import AgentSettings, load_settings
from agent.errors import ConfigError
from agent.gpu import GpuBackend, GpuInfo, GpuSample, open_backend
from agent.lease.poll import LeasePoller
from agent.lease.reconcile import GpuView, gpu_views
from agent.lease.state import AgentState, StateStore
from agent.lease.worker import LeaseWorker
from agent.link.client import CoordinatorClient
from agent.link.coordinator_health import CoordinatorHealth
from agent.link.units import RentableUnit
from agent.log import get_logger
from agent.service import sdnotify
from agent.service.attestation import AttestationJob
from agent.service.heartbeat import Heartbeat
from agent.service.status import StatusReporter

log = get_logger("agent.daemon")

STOP_DEADLINE_S = 4.0  # SIGTERM → exit 0 within 5 s, with a second to spare
JOB_ID = "heartbeat"


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
        self.attest_requested = threading.Event()
        self.state = AgentState()
        self.backend: GpuBackend | None = None
        self.gpus: list[GpuInfo] = []
        self.units: list[RentableUnit] = []  # what is registered, heartbeated and leased
        self.samples: dict[str, GpuSample] = {}
        self.client: CoordinatorClient | None = None
        self.worker: LeaseWorker | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.instance_id = uuid.uuid4().hex
        self.coordinator_interval_s: float | None = None
        self.interval_s = settings.agent.heartbeat_interval_s
        self.health = CoordinatorHealth(self.interval_s)
        self.heartbeat = Heartbeat(self)
        self.status = StatusReporter(self)
        self._poller: LeasePoller | None = None
        self.heartbeat_tick_at = time.monotonic()
        self._threads: list[threading.Thread] = []
        self.counters: collections.Counter[str] = collections.Counter()  # for agent.service.metrics
        self.xid_counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self._stop_metrics: Callable[[], None] | None = None

    @property
    def coordinator_state(self) -> str:
        """How the coordinator is doing: "ok", "unreachable", "rejects our key (401)", ..."""
        return self.health.state

    @property
    def _hb_next_try(self) -> float:
        """No heartbeat before this (time.monotonic()): a failure's backoff."""
        return self.health.next_try_at

    @_hb_next_try.setter
    def _hb_next_try(self, value: float) -> None:
        self.health.next_try_at = value

    # -- views ------------------------------------------------------------------------------

    def gpu_views(self) -> dict[str, GpuView]:
        """What lease reconciliation knows about each local rentable unit (GPU or MIG)."""
        with self.lock:
            return gpu_views(self.units, self.samples, self.state.gpu_ids)

    def _client(self) -> CoordinatorClient | None:
        return self.client if self.registered_event.is_set() else None

    def _new_client(self, settings: AgentSettings) -> CoordinatorClient:
        c = settings.coordinator
        return CoordinatorClient(
            c.urls, api_key=c.resolve_api_key(), miner_id=c.miner_id, timeout_s=c.timeout_s
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
        self.heartbeat.sample()
        log.info(
            "agent_started",
            version=__version__,
            backend=self.backend.kind,
            gpus=len(self.gpus),
            units=len(self.units),
            state_dir=str(self.store.state_dir),
            coordinator=self.settings.coordinator.urls,
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
            log.info("agent_ready", status=self.status.last_line)
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
            backoff=self.health.poll_backoff,
        )
        self._poller = poll
        poller = threading.Thread(target=poll.run, name="lease-poll", daemon=True)
        self._threads = [worker, poller]
        if self.settings.attest.enabled:
            job = AttestationJob(self)
            self._threads.append(
                threading.Thread(
                    target=job.run, args=(self.stop_event,), name="attestation", daemon=True
                )
            )
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
        self.health.set_interval(interval)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.reschedule_job(JOB_ID, trigger=self._trigger())
        log.info("heartbeat_interval_changed", heartbeat_interval_s=interval)

    def set_coordinator_interval(self, interval_s: float | None) -> None:
        """The coordinator's wish (None: none); the heartbeat runs at min(config, this)."""
        self.coordinator_interval_s = interval_s
        self._set_interval()

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
            self.heartbeat.deregister(deadline=deadline - 1.0)
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
                self.health.next_try_at = 0.0
        if client is not None and old_client is not None:
            old_client.abort_long_poll()
            old_client.close()
        self._set_interval()
        self._retry_coordinator_now()
        if restart_needed:
            log.warning("config_reload_partial", restart_needed=restart_needed)
        log.info("config_reloaded")
        sdnotify.notify("READY=1\n" + self._status_line(force=True))

    def _retry_coordinator_now(self) -> None:
        """After a reload: forget every backoff and try the coordinator now (a new key?)."""
        self.health.reset()
        if self._poller is not None:
            self._poller.retry_now()
        if self.worker is not None:
            self.worker.coordinator_recovered()  # owed acks, refused ones included, go now
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    # -- heartbeat job ----------------------------------------------------------------------

    def _sample(self) -> None:
        """Read the GPUs now (what each tick does first)."""
        self.heartbeat.sample()

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
        self.heartbeat.tick()
        self.status.write()

    def _status_line(self, *, force: bool = False) -> str:
        """`STATUS=...` when it changed since the last one sent (or `force`), else ""."""
        return self.status.line(force=force)

    # -- metrics ----------------------------------------------------------------------------

    def _start_metrics(self) -> None:
        where = self.settings.metrics.host_port
        if where is None:
            return
        from agent.service.metrics import serve

        self._stop_metrics = serve(*where, self.status.metrics_snapshot)
        log.info("metrics_listening", listen=self.settings.metrics.listen)


def run(settings: AgentSettings, *, config_path: Path | None = None) -> int:
    """`aitbc-agent run`: the daemon's entry point; returns the process exit code."""
    return Daemon(settings, config_path=config_path).run()
