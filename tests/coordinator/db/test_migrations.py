"""Versioned migrations: `aitbc-coordinator migrate`, `--check`, and what `serve` refuses.

Each test runs on SQLite and on the throwaway PostgreSQL. The release 0.1.0 databases are real
dumps of databases 0.1.0 made itself (`release_0_1_0/make_fixture.py` says how).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import SAWarning

from coordinator_stub.db import migrate
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Base
from tests.support import REPO, database_url, live_coordinator

FIXTURES = Path(__file__).with_name("release_0_1_0")
# The fixture's market day used the keys ADMIN, MINER, ALICE and BOB (make_fixture.py): too short
# for a bootstrap key today, but stored keys stay valid across the upgrade.


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator_stub", *args, "--database-url", url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def load_release_0_1_0(db_kind: str, url: str) -> None:
    """Fill an empty database with the dump of a database release 0.1.0 made."""
    if db_kind == "sqlite":
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.executescript((FIXTURES / "sqlite.sql").read_text())
        return
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute((FIXTURES / "postgres.sql").read_text())  # type: ignore[arg-type]


def row_counts(db: Database) -> dict[str, int]:
    """Rows per table the database has (a table a later migration adds counts 0 until then)."""
    with db.engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
    with db.read() as session:
        return {
            table: int(session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)
            if table in present
            else 0
            for table in sorted(Base.metadata.tables)
        }


def schema_of(db: Database) -> dict[str, Any]:
    """Tables, columns and index definitions as the database itself reports them."""
    with db.engine.connect() as conn:
        inspector = inspect(conn)
        tables = {
            name: [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)]
            for name in sorted(inspector.get_table_names())
            if name != "alembic_version"
        }
        if conn.dialect.name == "sqlite":
            rows = conn.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            ).all()
        else:
            rows = conn.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
            ).all()
    # Whitespace and quoting differ between CREATE INDEX from a migration and from create_all.
    indexes = {name: re.sub(r'[\s"]+', "", sql) for name, sql in rows}
    return {"tables": tables, "indexes": indexes}


def models_diff(db: Database) -> list[Any]:
    with db.engine.connect() as conn, warnings.catch_warnings():
        # Neither SQLAlchemy nor Alembic reflects the lower(region) expression index on SQLite:
        # both say so and skip it; schema_of() compares that index from the catalogue instead.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", SAWarning)
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_migrations_build_exactly_the_schema_serve_creates(db_kind: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    by_migrations = Database(database_url(db_kind, tmp_path / "a"))
    by_serve = Database(database_url(db_kind, tmp_path / "b"))
    before, after = migrate.upgrade(by_migrations)
    assert before.empty
    assert after.current == migrate.head_revision()
    assert migrate.prepare_for_serve(by_serve).up_to_date
    assert schema_of(by_migrations) == schema_of(by_serve)
    assert "ix_gpus_region_price_id" in schema_of(by_migrations)["indexes"]
    assert models_diff(by_migrations) == []
    by_migrations.dispose()
    by_serve.dispose()


def test_a_release_0_1_0_database_is_upgraded_and_keeps_its_rows(
    db_kind: str, tmp_path: Path
) -> None:
    url = database_url(db_kind, tmp_path)
    load_release_0_1_0(db_kind, url)
    db = Database(url)
    rows = row_counts(db)
    assert rows["gpus"] == 2
    assert rows["bookings"] == 2
    assert rows["reviews"] == 1
    assert rows["stakes"] == 1
    assert rows["ledger_entries"] > 0

    check = cli("migrate", "--check", url=url)
    assert check.returncode == 1, check.stderr
    assert "release 0.1.0" in check.stdout
    assert "aitbc-coordinator migrate" in check.stdout

    refused = subprocess.run(
        [sys.executable, "-m", "coordinator_stub", "serve", "--port", "1", "--database-url", url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 78
    assert "aitbc-coordinator migrate" in refused.stderr
    assert "Traceback" not in refused.stderr

    upgraded = cli("migrate", url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"to revision {migrate.head_revision()}" in upgraded.stdout
    assert row_counts(db) == rows
    assert models_diff(db) == []
    (tmp_path / "fresh").mkdir()
    fresh = Database(database_url(db_kind, tmp_path / "fresh"))
    migrate.prepare_for_serve(fresh)
    assert schema_of(db) == schema_of(fresh)
    fresh.dispose()

    assert cli("migrate", "--check", url=url).returncode == 0
    again = cli("migrate", url=url)
    assert again.returncode == 0
    assert "already at revision" in again.stdout
    db.dispose()

    # And the upgraded database serves its old rows: the GPUs, the review, the money.
    with live_coordinator(url) as base:
        gpus = httpx.get(f"{base}/v1/marketplace/gpu/list").json()
        assert sorted(g["uuid"] for g in gpus) == ["GPU-fixture-0", "GPU-fixture-1"]
        reviewed = next(g for g in gpus if g["total_reviews"] == 1)
        assert reviewed["average_rating"] == 5
        # The principal, not `staked`: the sweeper may settle the fixture's 24 h booking now,
        # and its stakers' share adds rewards.
        stakes = httpx.get(f"{base}/v1/stakes", headers={"X-Api-Key": "BOB"}).json()
        assert [s["amount"] for s in stakes] == ["150.00000000"]
        orders = httpx.get(f"{base}/v1/marketplace/orders", headers={"X-Api-Key": "ALICE"})
        assert len(orders.json()) == 2


def test_serve_and_migrate_refuse_a_database_from_a_newer_coordinator(
    db_kind: str, tmp_path: Path
) -> None:
    url = database_url(db_kind, tmp_path)
    db = Database(url)
    migrate.prepare_for_serve(db)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrate.SchemaVersionError, match="newer coordinator"):
        migrate.prepare_for_serve(db)
    db.dispose()
    refused = cli("migrate", url=url)
    assert refused.returncode == 65
    assert "9999" in refused.stderr
    assert "newer coordinator" in refused.stderr
    assert cli("migrate", "--check", url=url).returncode == 1


def test_migrate_refuses_to_adopt_a_database_that_is_not_a_coordinators(
    db_kind: str, tmp_path: Path
) -> None:
    url = database_url(db_kind, tmp_path)
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
    db.dispose()
    refused = cli("migrate", url=url)
    assert refused.returncode == 65
    assert "not a coordinator database" in refused.stderr
    db = Database(url)
    with db.engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"invoices"}  # nothing was touched
    db.dispose()


def test_migrate_creates_an_empty_database_revision_by_revision(
    db_kind: str, tmp_path: Path
) -> None:
    url = database_url(db_kind, tmp_path)
    done = cli("migrate", url=url)
    assert done.returncode == 0, done.stderr
    assert f"upgraded from empty to revision {migrate.head_revision()}" in done.stdout
    check = cli("migrate", "--check", url=url)
    assert check.returncode == 0
    assert "up to date" in check.stdout
