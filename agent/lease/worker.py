"""The lease worker: one thread that turns desired leases into hooks, state and acks.

Desired lease sets arrive from the long poll and from heartbeat answers (`offer`), ordered by
`lease_version` so an older answer never undoes a newer one. The worker plans with the pure
`agent.lease.reconcile.plan`, records each transition in the state file *before* the hook that
follows it (at most once per lease), ends leases locally at `end_time` (never earlier, coordinator
or not) and retries owed acks with backoff until the coordinator accepts them or calls them stale
(`agent.lease.acks`: a refused ack waits on its own schedule, so it never holds back the other
leases' acks).

Hooks never run on this thread: each lease's hooks run on a thread of their own
(`agent.lease.hook_threads`), so a slow `on_start` of one lease never delays another lease's start,
its end at `end_time` or an ack. This thread still records every `starting` / `stopping` before the
hook; the hook thread records `started` / `stopped` after it and wakes this thread to ack.
Heartbeats never wait for hooks either.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from agent.config import LeasesSettings
from agent.errors import StateError
from agent.histogram import Histogram
from agent.lease.acks import AckSender
from agent.lease.hook_threads import LeaseHookThreads
from agent.lease.hooks import HOOK_NAMES, HookName, HookResult, lease_env, run_lease_hook
from agent.lease.inbox import LeaseInbox
from agent.lease.reconcile import GpuView, Reack, Reject, Start, Stop, Update, next_expiry, plan
from agent.lease.state import AgentState, HeldLease, StateStore, utc_now
from agent.link.client import CoordinatorClient
from agent.link.wire import DesiredLease, LeaseReport
from agent.log import get_logger

log = get_logger("agent.leases")

IDLE_TICK_S = 1.0


class LeaseWorker:
    """Owns `state.leases`; everything else reads them through `report()` / `counts()`."""

    def __init__(
        self,
        *,
        state: AgentState,
        store: StateStore,
        lock: threading.RLock,
        settings: Callable[[], LeasesSettings],
        client: Callable[[], CoordinatorClient | None],
        gpus: Callable[[], Mapping[str, GpuView]],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._state = state
        self._store = store
        self._lock = lock
        self._settings = settings
        self._client = client
        self._gpus = gpus
        self._clock = clock
        self._wake = threading.Event()
        self._inbox = LeaseInbox(lock)
        self._acks = AckSender(state=state, lock=lock, save=self._save, client=client)
        self._hooks = LeaseHookThreads(lock, on_done=self._wake.set)
        self._closing = threading.Event()  # the stop event once `run` started: no new hooks
        self.tick_at = time.monotonic()
        self.busy_until: float | None = None  # a deadline while `step(wait=True)` waits on hooks
        self.state_error: str | None = None
        # For agent.service.metrics, under `lock` (the hook threads count too).
        self.counters: collections.Counter[str] = collections.Counter()
        self.hook_seconds: dict[HookName, Histogram] = {h: Histogram() for h in HOOK_NAMES}

    # -- inputs from other threads ----------------------------------------------------------

    @property
    def lease_version(self) -> int | None:
        """The newest lease version applied (the long poll's `since`)."""
        return self._inbox.version

    def offer(
        self, version: int | None, leases: list[DesiredLease], *, since: int | None = None
    ) -> bool:
        """Hand over a desired lease set (see `LeaseInbox.offer`); False when not applied."""
        if not self._inbox.offer(version, leases, since=since):
            return False
        self._wake.set()
        return True

    def reset_version(self) -> None:
        """Forget the lease version (after re-registering: the coordinator may have restarted)."""
        self._inbox.reset_version()

    def poke(self) -> None:
        """Wake the worker now (e.g. to retry acks)."""
        self._wake.set()

    def coordinator_recovered(self) -> None:
        """The coordinator answers again (or after a reload): send owed acks now.

        Refused acks are retried at once too: a refusal often had the same cause as the
        trouble just ended (a revoked or wrong key, fixed by a reload).
        """
        self._acks.recovered()
        self._wake.set()

    @property
    def _next_ack_try(self) -> float:
        """When owed acks are tried again (time.monotonic()); see `AckSender.next_try`."""
        return self._acks.next_try

    def report(self) -> list[LeaseReport]:
        """The leases to report in a heartbeat: active ones and those with an ack owed."""
        with self._lock:
            return [
                LeaseReport(
                    booking_id=lease.booking_id, generation=lease.generation, state=lease.phase
                )
                for lease in self._state.leases.values()
                if lease.active or lease.ack_pending
            ]

    def counts(self) -> tuple[int, int]:
        """(active leases, acks owed)."""
        with self._lock:
            leases = self._state.leases.values()
            return sum(lease.active for lease in leases), sum(lease.ack_pending for lease in leases)

    def active_units(self) -> collections.Counter[str]:
        """Active leases per rentable unit uuid (a GPU's, or a MIG instance's)."""
        with self._lock:
            return collections.Counter(
                lease.gpu_uuid for lease in self._state.leases.values() if lease.active
            )

    # -- startup ----------------------------------------------------------------------------

    def resume(self) -> None:
        """After a restart: finish transitions a crash interrupted, without rerunning hooks."""
        changed = False
        with self._lock:
            for lease in self._state.leases.values():
                if lease.phase == "starting":
                    lease.phase = "started"
                    lease.detail = "resumed after a restart; on_start not run again"
                    lease.owe_ack("started", lease.generation)
                elif lease.phase == "stopping":
                    lease.phase = "stopped"
                    lease.detail = "resumed after a restart; on_end not run again"
                    lease.owe_ack("stopped", lease.generation)
                else:
                    if lease.active:
                        log.info("lease_resumed", booking_id=lease.booking_id, phase=lease.phase)
                    continue
                lease.updated_at = self._clock()
                changed = True
                log.info("lease_resumed", booking_id=lease.booking_id, phase=lease.phase)
            self._state.prune(self._clock())
            if changed:
                self._store.save(self._state)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set; never raises (one bad step must not end lease handling).

        Hooks still running when `stop` is set are not waited for (see
        `agent.lease.hook_threads`), and no new hook starts once it is set.
        """
        self._closing = stop
        while not stop.is_set():
            self._wake.wait(self._sleep_s())
            self._wake.clear()
            if stop.is_set():
                break
            self.tick_at = time.monotonic()
            try:
                self.step(wait=False)
            except Exception:  # the worker's tick guard: log and keep leases going
                log.exception("lease_step_failed")
                stop.wait(IDLE_TICK_S)

    def _sleep_s(self) -> float:
        with self._lock:
            # A lease whose hook runs is stopped when that hook ends (its thread wakes us), so
            # its end_time must not make this loop spin meanwhile.
            expiry = next_expiry(
                {b: lease for b, lease in self._state.leases.items() if not self._hooks.busy(b)}
            )
        if expiry is None:
            return IDLE_TICK_S
        until = (expiry - self._clock()).total_seconds()
        # Wake right at end_time (plus a hair, so "never earlier" holds on a coarse timer).
        return max(0.001, min(IDLE_TICK_S, until + 0.002))

    def step(self, *, wait: bool = True) -> None:
        """Apply the latest offer (if any), expire what is due and send owed acks.

        Hooks run on their own threads. `wait=True` (a one-shot caller, a test) waits for them,
        and for the stops they held back, before sending acks; the run loop passes False and is
        woken by each hook thread as it ends.
        """
        self._dispatch()
        while wait:
            self.busy_until = time.monotonic() + self._settings().hook_timeout_s + 5
            try:
                if not self._hooks.wait():
                    break
            finally:
                self.busy_until = None
            self._dispatch()  # the stops that waited for a hook
        self._acks.send()

    def _dispatch(self) -> None:
        gpus = self._gpus()
        with self._lock:
            offer = self._inbox.take()
            # Copies: hook threads change leases while `plan` reads them.
            held = {b: lease.model_copy() for b, lease in self._state.leases.items()}
            ready = self._hooks.take_ready()
        now = self._clock()
        actions = [*ready, *plan(held, None if offer is None else offer.leases, gpus, now)]
        for action in actions:
            if isinstance(action, Start | Stop) and self._closing.is_set():
                continue  # stopping: start no hook now (a restart plans it again)
            if isinstance(action, Start):
                self._start(action)
            elif isinstance(action, Stop):
                self._stop(action)
            elif isinstance(action, Reject):
                self._reject(action)
            elif isinstance(action, Update):
                self._update(action)
            else:
                self._reack(action)
        self._acks.send()

    # -- transitions ------------------------------------------------------------------------

    def save_state(self) -> bool:
        """Save the whole state (callers hold the lock); False, logged once, on failure."""
        return self._save()

    def _save(self) -> bool:
        error: str | None = None
        try:
            self._store.save(self._state)
        except StateError as exc:
            error = str(exc)
        if error is not None and error != self.state_error:
            log.error("state_save_failed", error=error)
        self.state_error = error
        return error is None

    def _start(self, action: Start) -> None:
        d, gpu = action.lease, action.gpu
        lease = HeldLease(
            booking_id=d.booking_id,
            gpu_uuid=gpu.uuid,
            gpu_id=d.gpu_id or gpu.gpu_id,
            gpu_index=gpu.index,
            client_id=d.client_id,
            start_time=d.start_time,
            end_time=d.end_time,
            generation=d.generation,
            phase="starting",
        )
        with self._lock:
            self._state.leases[d.booking_id] = lease
            if not self._save():
                # Not recorded, so on_start must not run: try again with the next offer.
                del self._state.leases[d.booking_id]
                log.error("lease_start_deferred", booking_id=d.booking_id)
                return
            log.info("lease_starting", booking_id=d.booking_id, gpu_uuid=gpu.uuid)
            self._hooks.spawn(d.booking_id, lambda: self._finish_start(lease, d.start_time))

    def _finish_start(self, lease: HeldLease, start_time: datetime | None) -> None:
        """On the lease's hook thread: run on_start, record `started` (or `rejected`)."""
        result = self._hook("on_start", self._settings().on_start, lease)
        with self._lock:
            lease.updated_at = self._clock()
            if result is None or result.ok:
                lease.phase = "started"
                lease.owe_ack("started", lease.generation)
            else:
                lease.phase = "rejected"
                lease.detail = f"on_start {result.describe()}"
                lease.owe_ack("rejected", lease.generation)
            self._save()
            started = lease.phase == "started"
            self.counters["leases_started_total" if started else "leases_failed_total"] += 1
        if started:
            latency = None if start_time is None else (self._clock() - start_time)
            log.info(
                "lease_started",
                booking_id=lease.booking_id,
                gpu_uuid=lease.gpu_uuid,
                since_booked_s=None if latency is None else round(latency.total_seconds(), 3),
            )
        else:
            log.error("lease_start_failed", booking_id=lease.booking_id, detail=lease.detail)

    def _stop(self, action: Stop) -> None:
        with self._lock:
            lease = self._state.leases.get(action.booking_id)
            if lease is None or not lease.active:
                return
            if self._hooks.busy(action.booking_id):
                # on_start still runs: on_end follows once it ended (never before, never twice).
                if self._hooks.defer(action):
                    log.info(
                        "lease_stop_waiting", booking_id=action.booking_id, reason=action.reason
                    )
                return
            previous = lease.phase
            lease.phase = "stopping"
            lease.updated_at = self._clock()
            if not self._save():
                lease.phase = previous  # on_end must not run unrecorded; retried next tick
                log.error("lease_stop_deferred", booking_id=lease.booking_id)
                return
            log.info("lease_stopping", booking_id=lease.booking_id, reason=action.reason)
            self._hooks.spawn(lease.booking_id, lambda: self._finish_stop(lease, action))

    def _finish_stop(self, lease: HeldLease, action: Stop) -> None:
        """On the lease's hook thread: run on_end, record `stopped`."""
        result = self._hook("on_end", self._settings().on_end, lease)
        with self._lock:
            lease.phase = "stopped"
            lease.updated_at = self._clock()
            lease.detail = action.reason + (
                "" if result is None or result.ok else f"; on_end {result.describe()}"
            )
            lease.generation = max(lease.generation, action.generation)
            lease.owe_ack("stopped", action.generation)
            self._save()
            self.counters["leases_ended_total"] += 1
        log.info(
            "lease_stopped", booking_id=lease.booking_id, reason=action.reason, detail=lease.detail
        )

    def _reject(self, action: Reject) -> None:
        d = action.lease
        lease = HeldLease(
            booking_id=d.booking_id,
            gpu_uuid=d.gpu_uuid or "",
            gpu_id=d.gpu_id,
            client_id=d.client_id,
            start_time=d.start_time,
            end_time=d.end_time,
            generation=d.generation,
            phase="rejected",
            detail=action.reason,
        )
        lease.owe_ack("rejected", d.generation)
        with self._lock:
            self._state.leases[d.booking_id] = lease
            self._save()
            self.counters["leases_rejected_total"] += 1
        log.warning("lease_rejected", booking_id=d.booking_id, reason=action.reason)

    def _update(self, action: Update) -> None:
        d = action.lease
        with self._lock:
            lease = self._state.leases.get(d.booking_id)
            if lease is None or not lease.active:
                return
            lease.generation = d.generation
            lease.end_time = d.end_time
            lease.updated_at = self._clock()
            if lease.phase == "started":
                lease.owe_ack("started", d.generation)
            self._save()
        log.info("lease_updated", booking_id=d.booking_id, generation=d.generation)

    def _reack(self, action: Reack) -> None:
        with self._lock:
            lease = self._state.leases.get(action.booking_id)
            if lease is None:
                return
            lease.generation = action.generation
            lease.owe_ack("stopped", action.generation)
            self._save()

    def _hook(self, hook: HookName, argv: list[str], lease: HeldLease) -> HookResult | None:
        if not argv:
            return None
        with self._lock:  # the worker's thread may change the lease (an Update) meanwhile
            env = lease_env(
                booking_id=lease.booking_id,
                gpu_uuid=lease.gpu_uuid,
                gpu_index=lease.gpu_index,
                client_id=lease.client_id,
                end_time=lease.end_time,
            )

        result = run_lease_hook(
            argv, env, timeout_s=self._settings().hook_timeout_s, booking_id=lease.booking_id
        )
        with self._lock:
            self.counters["hook_runs_total"] += 1
            self.hook_seconds[hook].observe(result.duration_s)
            if not result.ok:
                self.counters["hook_failures_total"] += 1
        return result
