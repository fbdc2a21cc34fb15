"""Lease acks: sent after the state that owes them is recorded, retried until accepted.

The lease worker records an owed ack (`HeldLease.owe_ack`) with the transition it reports; this
module sends what the state owes, from the worker's thread only. Two kinds of wait: the
coordinator being down (or throttling us) holds back every ack, with backoff; a refusal (4xx) of
one ack holds back only that lease, on its own slow schedule, so one permanently refused ack
never blocks the others. A stale generation (409) or an unknown booking drops the ack.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import CoordinatorRejectedError, CoordinatorUnavailableError
from agent.lease.state import AgentState
from agent.link.backoff import RETRY_AFTER_CAP_S, Backoff
from agent.link.client import CoordinatorClient
from agent.log import get_logger

log = get_logger("agent.leases")

_DROP_ACK_STATUSES = frozenset({404, 409, 410, 422})
ACK_REFUSED_INITIAL_S = 30.0  # one ack refused (4xx): its own, slow retry schedule
ACK_REFUSED_CAP_S = 600.0


@dataclass(slots=True)
class _AckRetry:
    """When to try a refused ack again; for one (generation, state) of one lease."""

    ack: tuple[int, str]
    backoff: Backoff
    next_try: float = 0.0


class AckSender:
    """Sends the acks `state` owes; `send` runs on the lease worker's thread alone."""

    def __init__(
        self,
        *,
        state: AgentState,
        lock: threading.RLock,
        save: Callable[[], bool],
        client: Callable[[], CoordinatorClient | None],
    ) -> None:
        self._state = state
        self._lock = lock
        self._save = save  # the worker's: saves the whole state, logs a failure once
        self._client = client
        self._backoff = Backoff(0.5, 15.0)
        self.next_try = 0.0  # time.monotonic() before which no ack is tried (all held back)
        self._retry: dict[str, _AckRetry] = {}  # booking id → a refused ack's own schedule
        self._retry_refused = False
        self._logged_rejections: set[tuple[str, int]] = set()

    def recovered(self) -> None:
        """The coordinator answers again (or after a reload): try every owed ack at once.

        Refused acks too: a refusal often had the same cause as the trouble just ended.
        """
        self._backoff.success()
        self.next_try = 0.0
        self._retry_refused = True  # read by the worker thread, which owns `_retry`

    def send(self) -> None:
        """Send the acks owed now; on the lease worker's thread."""
        # Two kinds of wait: the coordinator being down (or throttling us) holds back every ack
        # (`next_try`), while a refusal of one ack holds back only that lease (`_retry`),
        # so one permanently refused ack never blocks the others.
        now = time.monotonic()
        if now < self.next_try:
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
        if self._retry_refused:
            self._retry_refused = False
            for refused in self._retry.values():
                refused.next_try = 0.0
        owed_ids = {booking_id for booking_id, *_ in owed}
        for booking_id in [b for b in self._retry if b not in owed_ids]:
            del self._retry[booking_id]  # settled or pruned meanwhile
        for booking_id, generation, ack_state, detail in owed:
            assert ack_state is not None
            retry = self._retry.get(booking_id)
            if retry is not None and retry.ack == (generation, ack_state) and now < retry.next_try:
                continue
            failure: CoordinatorUnavailableError | CoordinatorRejectedError | None = None
            try:
                client.ack(booking_id, generation=generation, state=ack_state, detail=detail)
            except (CoordinatorUnavailableError, CoordinatorRejectedError) as exc:
                failure = exc
            if failure is None:
                self._backoff.success()
                self._retry.pop(booking_id, None)
                self._settle(booking_id, generation, ack_state)
                log.info(
                    "lease_acked", booking_id=booking_id, state=ack_state, generation=generation
                )
                continue
            if isinstance(failure, CoordinatorRejectedError) and failure.status_code != 429:
                if failure.status_code in _DROP_ACK_STATUSES:
                    # Stale generation (409) or a booking the coordinator no longer knows.
                    self._retry.pop(booking_id, None)
                    self._settle(booking_id, generation, ack_state)
                    log.info(
                        "lease_ack_dropped",
                        booking_id=booking_id,
                        state=ack_state,
                        status_code=failure.status_code,
                        detail=failure.detail,
                    )
                    continue
                self._refused(booking_id, (generation, ack_state), failure)
                continue
            # Unreachable, 5xx or 429: every other ack would meet the same fate; wait for all.
            delay = self._backoff.failure()
            if isinstance(failure, CoordinatorRejectedError) and failure.retry_after_s is not None:
                delay = max(delay, min(failure.retry_after_s, RETRY_AFTER_CAP_S))
            self.next_try = time.monotonic() + delay
            log.warning(
                "lease_ack_failed",
                booking_id=booking_id,
                error=str(failure),
                retry_in_s=round(delay, 2),
            )
            return

    def _refused(
        self, booking_id: str, ack: tuple[int, str], failure: CoordinatorRejectedError
    ) -> None:
        """A 4xx for one ack: retry that one on a long schedule (acks are retried until
        accepted, docs/miner-protocol.md)."""
        retry = self._retry.get(booking_id)
        if retry is None or retry.ack != ack:
            retry = _AckRetry(ack, Backoff(ACK_REFUSED_INITIAL_S, ACK_REFUSED_CAP_S))
            self._retry[booking_id] = retry
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

    def _settle(self, booking_id: str, generation: int, ack_state: str) -> None:
        with self._lock:
            lease = self._state.leases.get(booking_id)
            if (
                lease is not None
                and lease.ack_state == ack_state
                and lease.ack_generation == generation
            ):
                lease.acked = True
                self._save()
