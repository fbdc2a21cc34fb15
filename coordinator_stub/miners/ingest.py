"""Group commit for heartbeats: concurrent heartbeats share one write transaction.

A heartbeat's own work is a few row updates; what made it cost five times an empty request was
the machinery around them, paid once per heartbeat: a worker-thread hop, a Session, a
transaction and a commit. Here the route hands its parsed heartbeat to one writer thread and
awaits the answer on the event loop; the writer takes every heartbeat that is waiting (up to
`max_batch`) and stores them with `heartbeats.store_beats` in one `Database.write()`
transaction: the same write path, gate, commit hooks and events as every other write, paid once
per batch. Under light load a batch is one heartbeat and nothing waits; under heavy load batches
grow, so the cost per heartbeat falls as the load rises instead of the queue growing.

A batch that fails is retried one heartbeat per transaction, so one bad heartbeat (or a
deadlock victim on PostgreSQL) fails alone and with its own error. A miner that sent two
heartbeats at once has the second one stored in the next batch: one touch per miner per batch
keeps `online_heartbeats` (and the `miner_online` event) exact.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass

from coordinator_stub.db.engine import Database
from coordinator_stub.miners.heartbeats import Beat, Stored, store_beats

log = logging.getLogger("coordinator.heartbeats")

Outcome = Stored | None | BaseException  # None: the miner is not registered


@dataclass(slots=True)
class _Pending:
    beat: Beat
    future: asyncio.Future[Stored | None]
    loop: asyncio.AbstractEventLoop


class HeartbeatIngest:
    """One writer thread storing heartbeats in batches; `store` is awaited by the route."""

    def __init__(self, db: Database, *, offline_after_s: float, max_batch: int = 256) -> None:
        self._db = db
        self._offline_after_s = offline_after_s
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="heartbeat-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Store what is queued, then end the writer (at shutdown, before the engine goes)."""
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def store(self, beat: Beat) -> Stored | None:
        """Store one heartbeat (with whatever else is waiting); None: miner not registered."""
        if self._stopping:
            raise RuntimeError("the coordinator is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored | None] = loop.create_future()
        self._queue.put(_Pending(beat, future, loop))
        return await future

    def _run(self) -> None:
        deferred: list[_Pending] = []  # second heartbeats of a miner already in a batch
        stop = False
        while not stop or deferred:
            waiting, deferred = deferred, []
            if not waiting:
                item = self._queue.get()
                if item is None:
                    break
                waiting.append(item)
            while len(waiting) < self._max_batch and not stop:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    waiting.append(item)
            batch: dict[str, _Pending] = {}  # at most max_batch: so is `waiting`
            for pending in waiting:
                if pending.beat.miner_id in batch:
                    deferred.append(pending)
                else:
                    batch[pending.beat.miner_id] = pending
            self._settle(list(batch.values()), self._write(list(batch.values())))

    def _write(self, batch: list[_Pending]) -> list[Outcome]:
        try:
            return list(self._store([pending.beat for pending in batch]))
        except Exception as exc:  # noqa: BLE001 (re-raised in its request)
            if len(batch) == 1:
                return [exc]
        # Some heartbeat broke the batch: store each alone, so only that one fails.
        outcomes: list[Outcome] = []
        for pending in batch:
            try:
                outcomes.extend(self._store([pending.beat]))
            except Exception as exc:  # noqa: BLE001 (re-raised in its request)
                outcomes.append(exc)
        return outcomes

    def _store(self, beats: list[Beat]) -> list[Stored | None]:
        with self._db.write() as session:
            return store_beats(session, beats, offline_after_s=self._offline_after_s)

    @staticmethod
    def _settle(batch: list[_Pending], outcomes: list[Outcome]) -> None:
        """Hand each outcome to its waiting route: one wake-up per event loop, not per beat."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, Outcome]]] = defaultdict(list)
        for pending, outcome in zip(batch, outcomes, strict=True):
            by_loop[pending.loop].append((pending, outcome))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, settled)
            except RuntimeError:  # that loop closed: its requests are gone
                log.debug("heartbeat answers dropped: their event loop closed")


def _resolve(settled: list[tuple[_Pending, Outcome]]) -> None:
    for pending, outcome in settled:
        if pending.future.done():  # the client went away and the request was cancelled
            continue
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
