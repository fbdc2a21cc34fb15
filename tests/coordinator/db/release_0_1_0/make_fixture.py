"""Make the release 0.1.0 databases that the migration upgrade test starts from.

Run with release 0.1.0's code (commit ea63e45, the last before versioned migrations) first on
the import path, and a PostgreSQL URL to write into:

    git worktree add /tmp/v010 ea63e45
    HERE=$PWD/tests/coordinator/db/release_0_1_0 PG_BIN=/usr/lib/postgresql/15/bin  # pg_dump
    scripts/with-postgres.sh sh -c "cd /tmp/v010 && PYTHONPATH=/tmp/v010 PATH=$PG_BIN:\\$PATH \\
        $PWD/.venv/bin/python $HERE/make_fixture.py"

It drives 0.1.0's own app (its schema made by its own start-up) through a small market day —
keys, credits, a miner with two GPUs, a booking released and reviewed, one still running, a
stake, a bid, synced offers — and writes `sqlite.sql` (sqlite3's dump) and `postgres.sql`
(pg_dump, plain SQL with INSERTs, psql meta-commands left out) beside this file.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from coordinator_stub.app import create_app
from coordinator_stub.config import CoordinatorSettings

HERE = Path(__file__).resolve().parent
KEYS = "admin:ops:ADMIN,miner:host-01:MINER,client:alice:ALICE,client:bob:BOB"


def h(key: str) -> dict[str, str]:
    return {"X-Api-Key": key}


def market_day(url: str) -> None:
    settings = CoordinatorSettings(database_url=url, bootstrap_keys=KEYS)
    with TestClient(create_app(settings, run_sweeper=False)) as http:

        def ok(resp: object) -> None:
            code = resp.status_code  # type: ignore[attr-defined]
            assert code in (200, 201, 202), resp.text  # type: ignore[attr-defined]

        ok(http.post("/v1/miners/register", json={"region": "eu-west"}, headers=h("MINER")))
        gpus = []
        for n in range(2):
            body = {
                "gpu": {
                    "name": "NVIDIA H100 80GB HBM3",
                    "memory_gb": 80,
                    "memory_mib": 81559,
                    "uuid": f"GPU-fixture-{n}",
                    "price_per_hour": "2.5",
                    "region": "eu-west",
                    "capabilities": ["cuda12"],
                }
            }
            resp = http.post("/v1/marketplace/gpu/register", json=body, headers=h("MINER"))
            ok(resp)
            gpus.append(resp.json()["gpu_id"])
        ok(
            http.post(
                "/v1/miners/heartbeat",
                json={"gpus": [{"gpu_id": g} for g in gpus]},
                headers=h("MINER"),
            )
        )
        for subject, amount in (("alice", "100"), ("bob", "500")):
            ok(
                http.post(
                    f"/v1/admin/accounts/{subject}/credit",
                    json={"amount": amount},
                    headers=h("ADMIN"),
                )
            )
        ok(
            http.post(
                f"/v1/marketplace/gpu/{gpus[0]}/book",
                json={"duration_hours": 2},
                headers=h("ALICE"),
            )
        )
        ok(http.post(f"/v1/marketplace/gpu/{gpus[0]}/release", headers=h("ALICE")))
        ok(
            http.post(
                f"/v1/marketplace/gpu/{gpus[0]}/reviews",
                json={"rating": 5, "comment": "fast and honest"},
                headers=h("ALICE"),
            )
        )
        ok(
            http.post(
                f"/v1/marketplace/gpu/{gpus[1]}/book",
                json={"duration_hours": 24},
                headers=h("ALICE"),
            )
        )
        ok(http.post("/v1/stake", json={"miner_id": "host-01", "amount": "150"}, headers=h("BOB")))
        ok(
            http.post(
                "/v1/marketplace/bids",
                json={"provider": "host-01", "capacity": 1, "price": "2"},
                headers=h("ALICE"),
            )
        )
        ok(http.post("/v1/marketplace/sync-offers", headers=h("ADMIN")))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coordinator.db"
        market_day(f"sqlite:///{path}")
        with sqlite3.connect(path) as conn:
            (HERE / "sqlite.sql").write_text("\n".join(conn.iterdump()) + "\n")
    base = os.environ["TEST_POSTGRES_URL"]
    name = f"fixture_{uuid.uuid4().hex[:8]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + f"/{name}"
    market_day(url)
    dump = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "--no-privileges",
            "--inserts",
            url.replace("postgresql+psycopg://", "postgresql://"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # psql meta-commands (`\restrict` in newer pg_dump) are not SQL: the test runs plain SQL.
    sql = "".join(line for line in dump.splitlines(keepends=True) if not line.startswith("\\"))
    (HERE / "postgres.sql").write_text(sql)


if __name__ == "__main__":
    main()
