"""The lease worker: one thread that turns desired leases into hooks, state and acks.

Desired lease sets arrive from the long poll and from heartbeat answers (`offer`), ordered by
`lease_version` so an older answer never undoes a newer one. The worker plans with the pure
`agent.leases.plan`, records each transition in the state file *before* the hook that follows
it (at most once per lease), ends leases locally at `end_time` (never earlier, coordinator or
not) and retries owed acks with backoff until the coordinator accepts them or calls them stale
(a refused ack waits on its own schedule, so it never holds back the other leases' acks).

Hooks run one at a time on this thread; heartbeats never wait for them.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.backoff import RETRY_AFTER_CAP_S, Backoff
from agent.config import LeasesSettings
from agent.coordinator import CoordinatorClient
from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError, StateError
from agent.hooks import HookResult, lease_env, run_hook
from agent.leases import GpuView, Reack, Reject, Start, Stop, Update, next_expiry, plan
from agent.log import get_logger
from agent.state import AgentState, HeldLease, StateStore, utc_now
from agent.wire import DesiredLease, LeaseReport

log = get_logger("agent.leases")

IDLE_TICK_S = 1.0
_DROP_ACK_STATUSES = frozenset({404, 409, 410, 422})
ACK_REFUSED_INITIAL_S = 30.0  # one ack refused (4xx): its own, slow retry schedule
ACK_REFUSED_CAP_S = 600.0


@dataclass(slots=True)
class _AckRetry:
    """When to try a refused ack again; for one (generation, state) of one lease."""

    ack: tuple[int, str]
    backoff: Backoff
    next_try: float = 0.0


@dataclass(slots=True)
class _Offer:
    version: int | None
    leases: list[DesiredLease]


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
        self._offer: _Offer | None = None
        self._version: int | None = None
        self._ack_backoff = Backoff(0.5, 15.0)
        self._next_ack_try = 0.0
        self._ack_retry: dict[str, _AckRetry] = {}  # booking id → a refused ack's own schedule
        self._retry_refused_acks = False
        self._logged_rejections: set[tuple[str, int]] = set()
        self.tick_at = time.monotonic()
        self.busy_until: float | None = None  # a hook's deadline while one runs
        self.state_error: str | None = None
        self.counters: collections.Counter[str] = collections.Counter()  # for agent.metrics

    # -- inputs from other threads ----------------------------------------------------------

    @property
    def lease_version(self) -> int | None:
        """The newest lease version applied (the long poll's `since`)."""
        with self._lock:
            return self._version

    def offer(
        self, version: int | None, leases: list[DesiredLease], *, since: int | None = None
    ) -> bool:
        """Hand over a desired lease set; False when it was not applied.

        `since` is the version this worker held when the answer was asked for (the long poll's
        `since`). An answer older than the version held is normally a stale answer that raced a
        newer one (a heartbeat and the long poll cross) and is dropped. But an answer older than
        `since` cannot be a race: the coordinator's lease version went backwards after we learnt
        the newer one (its database was restored, or a failover kept the miner row but not the
        lease history). Its lease set is then the truth: adopt it and its version, as after a
        re-registration, or the long poll (answered at once while `since` differs) and every
        heartbeat would be ignored until the version caught up.
        """
        with self._lock:
            held = self._version
            if version is not None and held is not None and version < held:
                if since is None or version >= since:
                    return False  # a stale answer that crossed a newer one
                if held != since:
                    # A heartbeat moved the version while this answer was on its way: which of
                    # the two came after the reset is unknown. Ask afresh rather than guess.
                    self._version = None
                    log.warning("lease_version_went_back", held=held, coordinator=version)
                    return False
                log.warning(
                    "lease_version_reset", held=held, coordinator=version, leases=len(leases)
                )
            if version is not None:
                self._version = version
            self._offer = _Offer(version, leases)
        self._wake.set()
        return True

    def reset_version(self) -> None:
        """Forget the lease version (after re-registering: the coordinator may have restarted)."""
        with self._lock:
            self._version = None

    def poke(self) -> None:
        """Wake the worker now (e.g. to retry acks)."""
        self._wake.set()

    def coordinator_recovered(self) -> None:
        """The coordinator answers again (or after a reload): send owed acks now.

        Refused acks are retried at once too: a refusal often had the same cause as the
        trouble just ended (a revoked or wrong key, fixed by a reload).
        """
        self._ack_backoff.success()
        self._next_ack_try = 0.0
        self._retry_refused_acks = True  # read by the worker thread, which owns `_ack_retry`
        self._wake.set()

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
        """Work until `stop` is set; never raises (one bad step must not end lease handling)."""
        while not stop.is_set():
            self._wake.wait(self._sleep_s())
            self._wake.clear()
            if stop.is_set():
                break
            self.tick_at = time.monotonic()
            try:
                self.step()
            except Exception:  # the worker's tick guard: log and keep leases going
                log.exception("lease_step_failed")
                stop.wait(IDLE_TICK_S)

    def _sleep_s(self) -> float:
        with self._lock:
            expiry = next_expiry(self._state.leases)
        if expiry is None:
            return IDLE_TICK_S
        until = (expiry - self._clock()).total_seconds()
        # Wake right at end_time (plus a hair, so "never earlier" holds on a coarse timer).
        return max(0.001, min(IDLE_TICK_S, until + 0.002))

    def step(self) -> None:
        """Apply the latest offer (if any), expire what is due and send owed acks."""
        with self._lock:
            offer, self._offer = self._offer, None
            held = dict(self._state.leases)
        now = self._clock()
        actions = plan(held, None if offer is None else offer.leases, self._gpus(), now)
        for action in actions:
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
        self._send_acks()

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
        result = self._hook(self._settings().on_start, lease)
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
        self.counters[
            "leases_started_total" if lease.phase == "started" else "leases_failed_total"
        ] += 1
        if lease.phase == "started":
            latency = None if d.start_time is None else (self._clock() - d.start_time)
            log.info(
                "lease_started",
                booking_id=d.booking_id,
                gpu_uuid=gpu.uuid,
                since_booked_s=None if latency is None else round(latency.total_seconds(), 3),
            )
        else:
            log.error("lease_start_failed", booking_id=d.booking_id, detail=lease.detail)

    def _stop(self, action: Stop) -> None:
        with self._lock:
            lease = self._state.leases.get(action.booking_id)
            if lease is None or not lease.active:
                return
            previous = lease.phase
            lease.phase = "stopping"
            lease.updated_at = self._clock()
            if not self._save():
                lease.phase = previous  # on_end must not run unrecorded; retried next tick
                log.error("lease_stop_deferred", booking_id=lease.booking_id)
                return
        log.info("lease_stopping", booking_id=lease.booking_id, reason=action.reason)
        result = self._hook(self._settings().on_end, lease)
        with self._lock:
            lease.phase = "stopped"
            lease.updated_at = self._clock()
            lease.detail = action.reason + (
                "" if result is None or result.ok else f"; on_end {result.describe()}"
            )
            lease.generation = max(lease.generation, action.generation)
            lease.owe_ack("stopped", action.generation)
            self._save()
        self.counters["leases_stopped_total"] += 1
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

    def _hook(self, argv: list[str], lease: HeldLease) -> HookResult | None:
        if not argv:
            return None
        timeout_s = self._settings().hook_timeout_s
        env = lease_env(
            booking_id=lease.booking_id,
            gpu_uuid=lease.gpu_uuid,
            gpu_index=lease.gpu_index,
            client_id=lease.client_id,
            end_time=lease.end_time,
        )
        self.busy_until = time.monotonic() + timeout_s + 5
        try:
            result = run_hook(argv, env, timeout_s=timeout_s)
        finally:
            self.busy_until = None
        self.counters["hook_runs_total"] += 1
        if not result.ok:
            self.counters["hook_failures_total"] += 1
        level = log.info if result.ok else log.error
        level("hook_finished", hook=argv[0], booking_id=lease.booking_id, result=result.describe())
        return result

    # -- acks -------------------------------------------------------------------------------

    def _send_acks(self) -> None:
        # Two kinds of wait: the coordinator being down (or throttling us) holds back every ack
        # (`_next_ack_try`), while a refusal of one ack holds back only that lease (`_ack_retry`),
        # so one permanently refused ack never blocks the others.
        now = time.monotonic()
        if now < self._next_ack_try:
            return
        client = self._client()
        if client is None:
            return
        with self._lock:
            owed = [
                (lease.booking_id, lease.ack_generation or 0, lease.ack_state, lease.detail)
                for lease in self._state.leases.values()
                if lease.ack_pending and lease.ack_state is not None
            ]
        if self._retry_refused_acks:
            self._retry_refused_acks = False
            for refused in self._ack_retry.values():
                refused.next_try = 0.0
        owed_ids = {booking_id for booking_id, *_ in owed}
        for booking_id in [b for b in self._ack_retry if b not in owed_ids]:
            del self._ack_retry[booking_id]  # settled or pruned meanwhile
        for booking_id, generation, ack_state, detail in owed:
            assert ack_state is not None
            retry = self._ack_retry.get(booking_id)
            if retry is not None and retry.ack == (generation, ack_state) and now < retry.next_try:
                continue
            failure: CoordinatorUnavailableError | CoordinatorRejectedError | None = None
            try:
                client.ack(booking_id, generation=generation, state=ack_state, detail=detail)
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                failure = exc
            if failure is None:
                self._ack_backoff.success()
                self._ack_retry.pop(booking_id, None)
                self._settle_ack(booking_id, generation, ack_state)
                log.info(
                    "lease_acked", booking_id=booking_id, state=ack_state, generation=generation
                )
                continue
            if isinstance(failure, CoordinatorRejectedError) and failure.status_code != 429:
                if failure.status_code in _DROP_ACK_STATUSES:
                    # Stale generation (409) or a booking the coordinator no longer knows.
                    self._ack_retry.pop(booking_id, None)
                    self._settle_ack(booking_id, generation, ack_state)
                    log.info(
                        "lease_ack_dropped",
                        booking_id=booking_id,
                        state=ack_state,
                        status_code=failure.status_code,
                        detail=failure.detail,
                    )
                    continue
                self._ack_refused(booking_id, (generation, ack_state), failure)
                continue
            # Unreachable, 5xx or 429: every other ack would meet the same fate; wait for all.
            delay = self._ack_backoff.failure()
            if isinstance(failure, CoordinatorRejectedError) and failure.retry_after_s is not None:
                delay = max(delay, min(failure.retry_after_s, RETRY_AFTER_CAP_S))
            self._next_ack_try = time.monotonic() + delay
            log.warning(
                "lease_ack_failed",
                booking_id=booking_id,
                error=str(failure),
                retry_in_s=round(delay, 2),
            )
            return

    def _ack_refused(
        self, booking_id: str, ack: tuple[int, str], failure: CoordinatorRejectedError
    ) -> None:
        """A 4xx for one ack: retry that one on a long schedule ("until accepted", SPEC)."""
        retry = self._ack_retry.get(booking_id)
        if retry is None or retry.ack != ack:
            retry = _AckRetry(ack, Backoff(ACK_REFUSED_INITIAL_S, ACK_REFUSED_CAP_S))
            self._ack_retry[booking_id] = retry
        delay = retry.backoff.failure()
        retry.next_try = time.monotonic() + delay
        if (booking_id, failure.status_code) not in self._logged_rejections:
            self._logged_rejections.add((booking_id, failure.status_code))
            log.error(
                "lease_ack_rejected",
                booking_id=booking_id,
                status_code=failure.status_code,
                detail=failure.detail,
                retry_in_s=round(delay, 2),
            )

    def _settle_ack(self, booking_id: str, generation: int, ack_state: str) -> None:
        with self._lock:
            lease = self._state.leases.get(booking_id)
            if (
                lease is not None
                and lease.ack_state == ack_state
                and lease.ack_generation == generation
            ):
                lease.acked = True
                self._save()
