"""Engine and sessions from `database_url`: SQLite (WAL) by default, PostgreSQL to scale out.

SQLite: every write transaction starts with `BEGIN IMMEDIATE`, so two writers never deadlock on a
lock upgrade; readers use a plain deferred `BEGIN` and, in WAL mode, never block writers.
PostgreSQL: READ COMMITTED; invariants are held by unique indexes and compare-and-set updates
whose row counts are checked, so they hold across coordinator processes too. The schema itself
is versioned by `coordinator_stub.db.migrate`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from coordinator_stub.core import events
from coordinator_stub.db.models import Base

_IMMEDIATE = "sqlite_immediate"


class Database:
    """Owns the engine and hands out read and write sessions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine = _make_engine(url, pool_size=pool_size)
        self._writer = (
            self.engine.execution_options(**{_IMMEDIATE: True}) if self.is_sqlite else self.engine
        )
        self._read = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self._writer, expire_on_commit=False)
        # Events queued by a write transaction are logged once it committed (core.events).
        event.listen(self._write, "after_commit", events.publish_committed)
        self._write_gate: AbstractContextManager[object] = (
            threading.RLock() if self.is_sqlite else nullcontext()
        )

    def begin_exclusive(self) -> AbstractContextManager[Connection]:
        """A transaction that holds the database's write lock from its first statement
        (`BEGIN IMMEDIATE` on SQLite), for schema steps that must not interleave."""
        return self._writer.begin()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any exception.

        SQLite: writers of this process queue on a lock before `BEGIN IMMEDIATE`. SQLite's own
        busy handler sleeps in growing steps (up to 100 ms) between retries, which under load
        costs far more than the writes; the lock hands over at once. Other processes still
        meet at SQLite's lock.
        """
        with self._write_gate, self._write() as session, session.begin():
            yield session

    def on_write_commit(self, listener: Callable[[Session], None]) -> None:
        """Call `listener(session)` after each write transaction commits (wakes lease polls)."""
        event.listen(self._write, "after_commit", listener)

    @staticmethod
    def redact(url: str) -> str:
        """The URL without its password, for logs."""
        return make_url(url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def insert_or_ignore(
    session: Session, model: type[Base], values: dict[str, Any], index_elements: list[str]
) -> bool:
    """INSERT unless a row with the same key exists; True when a row was inserted.

    Race-free on both databases (ON CONFLICT DO NOTHING), unlike a SELECT-then-INSERT.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(model).values(**values).on_conflict_do_nothing(index_elements=index_elements)
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def _create_private(url: str) -> None:
    """Create a SQLite database file readable by its owner only (0600), before SQLite would
    create it with the umask's mode; its -wal and -shm files follow the file's mode. The file
    holds key hashes, balances and every renter's bookings."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        return  # SQLite itself reports the missing directory at the first connection
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _make_engine(url: str, *, pool_size: int) -> Engine:
    if url.startswith("sqlite"):
        _create_private(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=20,
        )
        _install_sqlite_hooks(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event emit BEGIN itself (pysqlite's implicit BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
