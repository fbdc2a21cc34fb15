"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coordinator_stub.app import create_app
from coordinator_stub.config import CoordinatorSettings
from tests.support import BOOTSTRAP_KEYS, FakeClock, database_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_kind(request: pytest.FixtureRequest) -> str:
    """Run the test on SQLite and on the throwaway PostgreSQL."""
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, tmp_path: Path) -> str:
    return database_url(db_kind, tmp_path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(db_url: str) -> CoordinatorSettings:
    return CoordinatorSettings(database_url=db_url, bootstrap_keys=BOOTSTRAP_KEYS)


@pytest.fixture
def client(settings: CoordinatorSettings, clock: FakeClock) -> Iterator[TestClient]:
    """The app in-process on a fake clock, sweeper off (tests call it through app.state)."""
    app = create_app(settings, clock=clock, run_sweeper=False)
    with TestClient(app) as test_client:
        yield test_client
