"""Background upkeep: settle what time alone has ended, so no API call is needed for it.

Each pass runs the registered sweep functions, each in its own transaction(s). The sweep
functions are idempotent compare-and-set updates, so several coordinator processes may sweep the
same database at once without settling anything twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from coordinator_stub.config import CoordinatorSettings
from coordinator_stub.db.engine import Database
from coordinator_stub.market import bookings
from coordinator_stub.miners import heartbeats
from coordinator_stub.miners.faults import ProviderFaultSweep

log = logging.getLogger("coordinator.sweeper")

SweepFn = Callable[[Database, CoordinatorSettings, datetime], int]


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

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> dict[str, int]:
        """One pass; how many each task ended or changed, by task name."""
        return {
            name: task(self._db, self._settings, self._clock())
            for name, task in self._tasks.items()
        }

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.sweep_interval_s):
            try:
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
