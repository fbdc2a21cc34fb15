"""Wake-ups for the lease long poll (`GET /v1/miners/leases`), in-process and across processes.

Three sources wake a waiting poll of miner M:
- this process committed a change of M's lease set: `market.lease_signal.lease_set_changed`
  noted M in `session.info`, and `Database.on_write_commit` hands it to `LeaseHub` after the commit;
- PostgreSQL: any coordinator process committed one: its `pg_notify` reaches the dedicated
  `LISTEN` connection of every process (NOTIFY is sent at commit, never for a rollback);
- SQLite (one machine, possibly several processes): a poller thread reads the `lease_version` of
  the watched miners every `lease_poll_interval_s`, in one query for all of them.

Waiters are `asyncio.Event`s on the event loop: a waiting poll holds no database connection and
no worker thread, so hundreds of open polls cost nothing but memory. A wake-up only means "look
again": the handler re-reads `lease_version` itself. A waiter is registered before that read, so
a change committed between the read and the wait still wakes it; a spurious wake-up costs one read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Miner
from coordinator_stub.market.lease_signal import CHANGED_MINERS, NOTIFY_CHANNEL

log = logging.getLogger("coordinator.leases")

_POLL_CHUNK = 500  # miners per version query (well under SQLite's bound-parameter limit)


class Waiter:
    """One open long poll: which miner, the version it has seen, and its event.

    `superseded` is set when a newer poll of the same miner pushed this one out: it answers at
    once with what it has (`LeaseHub.watch` keeps `max_lease_polls_per_miner` open at most).
    """

    __slots__ = ("event", "miner_id", "since", "superseded")

    def __init__(self, miner_id: str, since: int) -> None:
        self.miner_id = miner_id
        self.since = since
        self.event = asyncio.Event()
        self.superseded = False


class LeaseHub:
    """Tracks open long polls per miner and wakes them when that miner's leases may have changed."""

    def __init__(self, db: Database, settings: CoordinatorSettings) -> None:
        self._db = db
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        # Per miner, its open polls oldest first (a dict as an ordered set).
        self._waiters: dict[str, dict[Waiter, None]] = {}
        self._lock = threading.Lock()  # _waiters is read by the watcher thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.closing = False  # polls stop waiting once set (shutdown)

    def start(self) -> None:
        """Start watching; call from the event loop that will serve the long polls."""
        self._loop = asyncio.get_running_loop()
        self._db.on_write_commit(self._after_commit)
        watch = self._poll_sqlite if self._db.is_sqlite else self._listen_postgres
        self._thread = threading.Thread(target=watch, name="lease-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """The server is shutting down: every open poll answers now, and new ones at once.

        Safe from a signal handler or any thread. Without it a graceful shutdown would wait up
        to `wait_s` (30 s) for each parked poll to finish on its own.
        """
        self.closing = True
        self.wake(None)

    def open_polls(self) -> int:
        """Long polls parked now, over all miners (each holds one client socket)."""
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    def stop(self) -> None:
        self.closing = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None

    @contextmanager
    def watch(self, miner_id: str, since: int) -> Iterator[Waiter]:
        """Register a waiter for the duration of one long poll (from the event loop only)."""
        waiter = Waiter(miner_id, since)
        with self._lock:
            waiters = self._waiters.setdefault(miner_id, {})
            while len(waiters) >= self._settings.max_lease_polls_per_miner:
                # One key holding hundreds of polls would make one booking wake them all: the
                # newest poll supersedes the oldest, which answers now. An agent holds one.
                oldest = next(iter(waiters))
                del waiters[oldest]
                oldest.superseded = True
                oldest.event.set()
            waiters[waiter] = None
        try:
            yield waiter
        finally:
            with self._lock:
                still = self._waiters.get(miner_id)
                if still is not None:
                    still.pop(waiter, None)
                    if not still:
                        del self._waiters[miner_id]

    @staticmethod
    async def wait(waiter: Waiter, timeout_s: float) -> None:
        """Return when woken or after `timeout_s`, whichever comes first."""
        with suppress(TimeoutError):
            await asyncio.wait_for(waiter.event.wait(), max(timeout_s, 0.0))

    def wake(self, miner_ids: Iterable[str] | None) -> None:
        """Wake the polls of these miners (None: all). Safe from any thread."""
        loop = self._loop
        if loop is None:
            return
        ids = None if miner_ids is None else frozenset(miner_ids)
        with suppress(RuntimeError):  # the loop closed at shutdown: nobody is waiting any more
            loop.call_soon_threadsafe(self._wake_in_loop, ids)

    def _wake_in_loop(self, miner_ids: frozenset[str] | None) -> None:
        with self._lock:
            if miner_ids is None:
                woken = [w for ws in self._waiters.values() for w in ws]
            else:
                woken = [w for m in miner_ids for w in self._waiters.get(m, ())]
        for waiter in woken:
            waiter.event.set()

    def _after_commit(self, session: Session) -> None:
        changed: set[str] | None = session.info.pop(CHANGED_MINERS, None)
        if changed:
            self.wake(changed)

    def _poll_sqlite(self) -> None:
        """SQLite: one `lease_version` query for all watched miners per interval."""
        while not self._stop.wait(self._settings.lease_poll_interval_s):
            with self._lock:
                watched = {m: min(w.since for w in ws) for m, ws in self._waiters.items() if ws}
            if not watched:
                continue
            ids = list(watched)
            changed: list[str] = []
            try:
                with self._db.read() as session:
                    for start in range(0, len(ids), _POLL_CHUNK):
                        chunk = ids[start : start + _POLL_CHUNK]
                        rows = session.execute(
                            select(Miner.id, Miner.lease_version).where(Miner.id.in_(chunk))
                        )
                        changed.extend(m for m, version in rows if version != watched[m])
            except SQLAlchemyError:
                log.warning("lease_poll_failed", exc_info=True)
                continue
            if changed:
                self.wake(changed)

    def _listen_postgres(self) -> None:
        """PostgreSQL: a dedicated autocommit connection LISTENing on the lease channel."""
        import psycopg

        conninfo = make_url(self._db.url).set(drivername="postgresql")
        dsn = conninfo.render_as_string(hide_password=False)
        backoff_s = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Changes committed while we were not listening: every poll looks again.
                    self.wake(None)
                    backoff_s = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self.wake((note.payload,))
            except psycopg.Error:
                log.warning("lease_listener_failed", exc_info=True)
                self._stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 10.0)
