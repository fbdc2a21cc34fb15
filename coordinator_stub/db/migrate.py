"""Schema versions: `aitbc-coordinator migrate` and the check `serve` makes before it starts.

The schema is versioned by Alembic (`migrations/`, one revision per change, both engines).
Three kinds of database meet a coordinator:

- an empty one (a new SQLite file, a new PostgreSQL database): `serve` creates the schema of
  this release and records it as the newest revision, so `make demo` and a first start need
  no separate step; `migrate` builds it revision by revision;
- one this release can serve: its revision is the newest this code knows (`head`);
- any other: `serve` refuses it with a message naming the command that fixes it — an older
  revision, or a 0.1.0 database (tables but no version), needs `aitbc-coordinator migrate`; a
  newer revision (written by a newer coordinator) needs that coordinator or a backup.

`migrate` adopts a 0.1.0 database at revision 0001 (the schema 0.1.0 created at start) after
checking that its tables are there, then upgrades it. On PostgreSQL every schema step holds an
advisory lock, so coordinator processes that start or migrate together take turns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Base

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the schema release 0.1.0 created, without recording a version
_BASELINE_TABLES = frozenset(
    {
        "accounts",
        "api_keys",
        "bids",
        "bookings",
        "gpus",
        "ledger_entries",
        "miners",
        "offers",
        "reviews",
        "stake_rewards",
        "stakes",
    }
)
_SCHEMA_LOCK = 424242  # pg_advisory_xact_lock key shared by every schema step
MIGRATE_COMMAND = "aitbc-coordinator migrate"


class SchemaVersionError(RuntimeError):
    """The database's schema is not the one this coordinator serves; the message says why and
    which command fixes it."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: its revision (None: unversioned) against this code's head."""

    current: str | None
    head: str
    has_tables: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def empty(self) -> bool:
        return self.current is None and not self.has_tables

    def describe(self) -> str:
        if self.up_to_date:
            return f"at revision {self.current} (the newest): up to date"
        if self.empty:
            return f"empty: no schema yet (the newest revision is {self.head})"
        if self.current is None:
            return (
                "created by release 0.1.0 (tables without a schema version): "
                f"run `{MIGRATE_COMMAND}` to upgrade it to revision {self.head}"
            )
        if self.current not in _known_revisions():
            return (
                f"at revision {self.current}, which this coordinator does not know: a newer "
                f"coordinator wrote it (this one's newest is {self.head}); run that "
                "coordinator, or restore a backup made for this one"
            )
        return (
            f"at revision {self.current}, behind this coordinator's {self.head}: "
            f"run `{MIGRATE_COMMAND}`"
        )


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for our migrations; runs on `connection` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    # Read once per process: the shipped revisions do not change while it runs, and every
    # schema check (each app start) would otherwise parse them again.
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "no migrations shipped"
    return head


def _known_revisions() -> set[str]:
    return {s.revision for s in _scripts().walk_revisions()}


def _state(conn: Connection) -> SchemaState:
    current = MigrationContext.configure(conn).get_current_revision()
    tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
    return SchemaState(current=current, head=head_revision(), has_tables=bool(tables))


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # Serialise schema steps across coordinator processes; released at commit.
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")


def schema_state(db: Database) -> SchemaState:
    """Read where the database stands (a read; changes nothing)."""
    with db.engine.connect() as conn:
        return _state(conn)


def upgrade(db: Database) -> tuple[SchemaState, SchemaState]:
    """Bring the database to the newest revision; (before, after). Idempotent.

    Raises:
        SchemaVersionError: the database is at a revision this code does not know (newer), or
            holds tables but not the ones 0.1.0 created (not a coordinator database).
    """
    with db.begin_exclusive() as conn:
        _lock(conn)
        before = _state(conn)
        if before.current is not None and before.current not in _known_revisions():
            raise SchemaVersionError(f"the database is {before.describe()}")
        config = alembic_config(conn)
        if before.current is None and before.has_tables:
            tables = set(inspect(conn).get_table_names())
            missing = _BASELINE_TABLES - tables
            if missing:
                raise SchemaVersionError(
                    "the database holds tables but is not a coordinator database of release "
                    f"0.1.0 (missing: {', '.join(sorted(missing))}); refusing to adopt it"
                )
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        after = _state(conn)
    return before, after


def prepare_for_serve(db: Database) -> SchemaState:
    """What `serve` (and `create_app`'s lifespan) does first: create the schema of an empty
    database at the newest revision, and refuse any database that is not at it.

    A fresh database gets `create_all` plus a stamp, not the revision chain: the result is the
    same schema (a test compares the two on both engines), in a fraction of the time.
    """
    with db.begin_exclusive() as conn:
        _lock(conn)
        state = _state(conn)
        if state.empty:
            Base.metadata.create_all(conn)
            command.stamp(alembic_config(conn), "head")
            return _state(conn)
    if not state.up_to_date:
        raise SchemaVersionError(f"the database is {state.describe()}")
    return state
