"""Background upkeep: settle what time alone has ended, so no API call is needed for it.

Each pass runs the registered sweep functions, each in its own transaction(s). The sweep
functions are idempotent compare-and-set updates, so several coordinator processes could sweep
the same database at once without settling anything twice; on PostgreSQL only one does
(`SweepLeadership`): with dozens of processes, dozens of identical scans a second are waste.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db.engine import Database
from coordinator_stub.market import bookings
from coordinator_stub.miners import heartbeats
from coordinator_stub.miners.faults import ProviderFaultSweep

log = logging.getLogger("coordinator.sweeper")

SweepFn = Callable[[Database, CoordinatorSettings, datetime], int]

# The advisory lock every coordinator process of one PostgreSQL database competes for.
SWEEP_LOCK_KEY = 0x41495442_53574550  # "AITB" "SWEP"


class SweepLeadership:
    """Which process sweeps: on PostgreSQL the one holding a session advisory lock on a
    connection of its own (autocommit: it holds no snapshot). When that process dies its
    connection closes, the lock goes with it, and another process takes it at its next pass.
    On SQLite (one machine) every process sweeps; the sweeps are idempotent."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Connection | None = None
        self.leading = db.is_sqlite

    def check(self) -> bool:
        """Whether this process should sweep now; takes the lock when it is free."""
        if self._db.is_sqlite:
            return True
        try:
            if self._conn is None:
                self._conn = self._db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            if self.leading:
                self._conn.exec_driver_sql("SELECT 1")  # still connected: still the holder
            else:
                self.leading = bool(
                    self._conn.exec_driver_sql(
                        f"SELECT pg_try_advisory_lock({SWEEP_LOCK_KEY})"
                    ).scalar()
                )
        except SQLAlchemyError:
            self.release()  # the connection broke: whatever it held is gone
        return self.leading

    def release(self) -> None:
        self.leading = self._db.is_sqlite
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()  # closing the session releases the lock
            except SQLAlchemyError:
                log.debug("sweep_lock_connection_close_failed", exc_info=True)


class Sweeper:
    def __init__(
        self,
        db: Database,
        settings: CoordinatorSettings,
        clock: Callable[[], datetime],
        tasks: dict[str, SweepFn],
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._tasks = tasks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)
        self.leadership = SweepLeadership(db)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.leadership.release()

    def run_once(self) -> dict[str, int]:
        """One pass; how many each task ended or changed, by task name."""
        return {
            name: task(self._db, self._settings, self._clock())
            for name, task in self._tasks.items()
        }

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.sweep_interval_s):
            try:
                if self.leadership.check():
                    self.run_once()
            except Exception:  # the sweeper must outlive a bad pass (db restart, lock timeout)
                log.exception("sweep_failed")


def sweep_tasks() -> dict[str, SweepFn]:
    """Everything time alone can end: expired bookings, provider faults, miners' liveness."""
    # Expiry first (dicts keep order): a booking that has run out completes rather than
    # failing on a late fault.
    return {
        "bookings_completed": bookings.sweep,
        "provider_faults": ProviderFaultSweep(),
        "miners_offline": heartbeats.sweep_offline,
    }
