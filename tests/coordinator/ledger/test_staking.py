"""Staking: minimum, locks, unbond/complete, derived pools, exact pro-rata rewards, races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from coordinator_stub.core.money import ZERO
from coordinator_stub.db.engine import Database
from coordinator_stub.db.models import Booking, Stake
from coordinator_stub.ledger.staking import distribute_rewards, split_pro_rata
from coordinator_stub.ledger.transfers import conservation
from tests.coordinator.market_support import credit, new_booking, online, register
from tests.support import (
    ADMIN_KEY,
    CLIENT2_KEY,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    FakeClock,
    auth,
    live_coordinator,
)

WEEK_S = 604800


def stake(
    client: TestClient, key: str, amount: str, miner: str = "host-01", lock_days: int = 0
) -> dict[str, Any]:
    resp = client.post(
        "/v1/stake",
        json={"miner_id": miner, "amount": amount, "lock_period_days": lock_days},
        headers=auth(key),
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def pool(client: TestClient, miner: str = "host-01") -> dict[str, Any]:
    resp = client.get(f"/v1/staking/pools/{miner}")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def account(client: TestClient, key: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/v1/accounts/me", headers=auth(key)).json()
    return body


@pytest.fixture
def market(client: TestClient) -> TestClient:
    """Two miners that exist; alice and bob hold 10 000 AITBC each."""
    online(client, MINER_KEY)
    online(client, MINER2_KEY)
    credit(client, "alice", "10000")
    credit(client, "bob", "10000")
    return client


def unbond_and_complete(client: TestClient, clock: FakeClock, key: str, stake_id: str) -> Any:
    assert client.post(f"/v1/stake/{stake_id}/unbond", headers=auth(key)).status_code == 200
    clock.advance(seconds=WEEK_S)
    return client.post(f"/v1/stake/{stake_id}/complete", headers=auth(key))


def test_staker_count_counts_distinct_stakers_and_survives_a_completion(
    market: TestClient, clock: FakeClock
) -> None:
    first = stake(market, CLIENT_KEY, "100")
    stake(market, CLIENT_KEY, "250.5")
    stake(market, CLIENT2_KEY, "300")
    assert pool(market) == {
        "miner_id": "host-01",
        "total_staked": "650.50000000",
        "staker_count": 2,
        "total_rewards": "0.00000000",
        "active_stakes": 3,
        "unbonding_stakes": 0,
    }
    assert (
        market.post(f"/v1/stake/{first['id']}/unbond", headers=auth(CLIENT_KEY)).json()["status"]
        == "unbonding"
    )
    assert pool(market)["staker_count"] == 2  # unbonding still counts
    assert pool(market)["total_staked"] == "650.50000000"
    clock.advance(seconds=WEEK_S)
    done = market.post(f"/v1/stake/{first['id']}/complete", headers=auth(CLIENT_KEY))
    assert done.status_code == 200
    assert done.json()["status"] == "completed"
    after = pool(market)
    assert (after["staker_count"], after["total_staked"]) == (2, "550.50000000")
    assert pool(market, "host-02")["staker_count"] == 0
    stats = market.get("/v1/staking/stats").json()
    assert (stats["total_stakers"], stats["active_stakes"], stats["completed_stakes"]) == (2, 2, 1)
    assert stats["min_stake"] == "100.00000000"


def test_stake_below_the_minimum_is_422_with_a_clear_message(market: TestClient) -> None:
    resp = market.post(
        "/v1/stake", json={"miner_id": "host-01", "amount": "99.99999999"}, headers=auth(CLIENT_KEY)
    )
    assert resp.status_code == 422
    assert resp.json() == {
        "detail": "stake amount 99.99999999 AITBC is below the minimum stake of 100.00000000 AITBC"
    }
    assert account(market, CLIENT_KEY)["balance"] == "10000.00000000"
    assert stake(market, CLIENT_KEY, "100")["amount"] == "100.00000000"


@pytest.mark.parametrize(
    "body",
    [
        {"miner_id": "host-01", "amount": "100", "lock_period_days": 366},
        {"miner_id": "host-01", "amount": "100", "lock_period_days": -1},
        {"miner_id": "host-01", "amount": "100.000000001"},
        {"miner_id": "host-01", "amount": "-100"},
        {"miner_id": "host-01", "amount": "NaN"},
        {"miner_id": "", "amount": "100"},
        {"amount": "100"},
    ],
)
def test_stake_input_is_validated(market: TestClient, body: dict[str, Any]) -> None:
    assert market.post("/v1/stake", json=body, headers=auth(CLIENT_KEY)).status_code == 422


def test_stake_errors_unknown_miner_short_balance_and_auth(market: TestClient) -> None:
    body = {"miner_id": "nobody", "amount": "100"}
    assert market.post("/v1/stake", json=body, headers=auth(CLIENT_KEY)).status_code == 404
    big = {"miner_id": "host-01", "amount": "10000.00000001"}
    assert market.post("/v1/stake", json=big, headers=auth(CLIENT_KEY)).status_code == 402
    assert market.post("/v1/stake", json={**big, "amount": "100"}).status_code == 401
    assert account(market, CLIENT_KEY)["staked"] == "0.00000000"


def test_stake_visibility_404_and_403(market: TestClient) -> None:
    mine = stake(market, CLIENT_KEY, "100")
    assert market.get("/v1/stake/st_0000000000000000", headers=auth(CLIENT_KEY)).status_code == 404
    assert market.get(f"/v1/stake/{mine['id']}", headers=auth(CLIENT2_KEY)).status_code == 403
    for action in ("unbond", "complete"):
        resp = market.post(f"/v1/stake/{mine['id']}/{action}", headers=auth(CLIENT2_KEY))
        assert resp.status_code == 403
    assert market.get(f"/v1/stake/{mine['id']}", headers=auth(ADMIN_KEY)).json() == mine
    assert market.get(f"/v1/stake/{mine['id']}", headers=auth(CLIENT_KEY)).json() == mine
    assert market.get("/v1/stakes", headers=auth(CLIENT2_KEY)).json() == []
    assert [s["id"] for s in market.get("/v1/stakes", headers=auth(CLIENT_KEY)).json()] == [
        mine["id"]
    ]
    assert market.get("/v1/stakes?status=completed", headers=auth(CLIENT_KEY)).json() == []
    assert market.get("/v1/stakes?miner_id=host-02", headers=auth(CLIENT_KEY)).json() == []


def test_lock_unbond_complete_and_payout(market: TestClient, clock: FakeClock) -> None:
    locked = stake(market, CLIENT_KEY, "1000", lock_days=30)
    assert locked["lock_ends_at"] == "2026-12-26T12:00:00.000000Z"
    assert account(market, CLIENT_KEY)["staked"] == "1000.00000000"
    early = market.post(f"/v1/stake/{locked['id']}/unbond", headers=auth(CLIENT_KEY))
    assert early.status_code == 400
    assert "locked until 2026-12-26T12:00:00.000000Z" in early.json()["detail"]
    clock.advance(days=30)
    unbonding = market.post(f"/v1/stake/{locked['id']}/unbond", headers=auth(CLIENT_KEY)).json()
    assert unbonding["status"] == "unbonding"
    assert unbonding["unbonding_ends_at"] == "2027-01-02T12:00:00.000000Z"
    again = market.post(f"/v1/stake/{locked['id']}/unbond", headers=auth(CLIENT_KEY))
    assert again.status_code == 400
    add = market.post(
        f"/v1/stake/{locked['id']}/add",
        json={"additional_amount": "1"},
        headers=auth(CLIENT_KEY),
    )
    assert add.status_code == 400
    clock.advance(seconds=WEEK_S - 1)
    assert (
        market.post(f"/v1/stake/{locked['id']}/complete", headers=auth(CLIENT_KEY)).status_code
        == 400
    )
    clock.advance(seconds=1)
    done = market.post(f"/v1/stake/{locked['id']}/complete", headers=auth(CLIENT_KEY))
    assert done.status_code == 200
    assert done.json()["completed_at"] == "2027-01-02T12:00:00.000000Z"
    assert account(market, CLIENT_KEY)["balance"] == "10000.00000000"
    assert account(market, CLIENT_KEY)["staked"] == "0.00000000"
    twice = market.post(f"/v1/stake/{locked['id']}/complete", headers=auth(CLIENT_KEY))
    assert twice.status_code == 400
    assert account(market, CLIENT_KEY)["balance"] == "10000.00000000"


def test_add_to_an_active_stake(market: TestClient) -> None:
    mine = stake(market, CLIENT_KEY, "100")
    resp = market.post(
        f"/v1/stake/{mine['id']}/add",
        json={"additional_amount": "0.00000001"},
        headers=auth(CLIENT_KEY),
    )
    assert resp.status_code == 200
    assert resp.json()["amount"] == "100.00000001"
    assert account(market, CLIENT_KEY)["staked"] == "100.00000001"
    for bad, code in (("0", 422), ("-1", 422), ("9900", 402)):
        resp = market.post(
            f"/v1/stake/{mine['id']}/add",
            json={"additional_amount": bad},
            headers=auth(CLIENT_KEY),
        )
        assert resp.status_code == code, bad
    assert pool(market)["total_staked"] == "100.00000001"


# ---- rewards -----------------------------------------------------------------------------------


@given(
    st.integers(min_value=0, max_value=10**15),
    st.lists(st.integers(min_value=1, max_value=10**14), min_size=1, max_size=30),
)
def test_split_pro_rata_is_exact_and_fair(total: int, weights: list[int]) -> None:
    keyed = [(f"k{i}", w) for i, w in enumerate(weights)]
    parts = split_pro_rata(total, keyed)
    assert sum(parts.values()) == total
    weight_sum = sum(weights)
    for key, weight in keyed:
        exact = Decimal(total) * weight / weight_sum
        assert abs(parts[key] - exact) < 1


def test_rewards_split_pro_rata_and_sum_to_the_share_exactly(
    market: TestClient, clock: FakeClock
) -> None:
    a1 = stake(market, CLIENT_KEY, "100")
    a2 = stake(market, CLIENT_KEY, "200.00000001")
    b1 = stake(market, CLIENT2_KEY, "333.33333333")
    gone = stake(market, CLIENT2_KEY, "500")
    assert (
        market.post(f"/v1/stake/{gone['id']}/unbond", headers=auth(CLIENT2_KEY)).status_code == 200
    )
    credit(market, "host-01", "5")
    db: Database = market.app.state.db  # type: ignore[attr-defined]
    share = Decimal("1.23456789")
    with db.write() as session:
        distributed = distribute_rewards(
            session, miner_id="host-01", amount=share, tx_ref="bk_test", now=clock()
        )
    assert distributed == share
    with db.read() as session:
        rewards = {s.id: s.rewards for s in session.scalars(select(Stake))}
        assert conservation(session).holds
    assert rewards[gone["id"]] == ZERO  # unbonding stakes earn nothing
    assert sum(rewards.values(), ZERO) == share
    principal = {a1["id"]: "100", a2["id"]: "200.00000001", b1["id"]: "333.33333333"}
    total = sum(Decimal(p) for p in principal.values())
    for stake_id, amount in principal.items():
        exact = share * Decimal(amount) / total
        assert abs(rewards[stake_id] - exact) < Decimal("0.00000001")
    assert account(market, MINER_KEY)["balance"] == str(Decimal(5) - share)
    alice = account(market, CLIENT_KEY)
    assert (
        Decimal(alice["staked"]) == Decimal("300.00000001") + rewards[a1["id"]] + rewards[a2["id"]]
    )
    assert pool(market)["total_rewards"] == "1.23456789"
    history = market.get(f"/v1/stake/{a2['id']}/rewards", headers=auth(CLIENT_KEY)).json()
    assert history["rewards"] == str(rewards[a2["id"]])
    assert [(d["amount"], d["ref"]) for d in history["distributions"]] == [
        (str(rewards[a2["id"]]), "bk_test")
    ]
    # Completing pays principal + rewards back.
    clock.advance(seconds=1)
    assert unbond_and_complete(market, clock, CLIENT_KEY, a1["id"]).status_code == 200
    expected = Decimal(10000) - Decimal("200.00000001") + rewards[a1["id"]]
    assert account(market, CLIENT_KEY)["balance"] == str(expected)


def test_no_active_stake_means_nothing_distributed(market: TestClient, clock: FakeClock) -> None:
    credit(market, "host-02", "1")
    db: Database = market.app.state.db  # type: ignore[attr-defined]
    with db.write() as session:
        assert (
            distribute_rewards(
                session, miner_id="host-02", amount=Decimal("0.5"), tx_ref="bk_x", now=clock()
            )
            == ZERO
        )
    assert account(market, MINER2_KEY)["balance"] == "1.00000000"


def test_settled_booking_pays_the_stakers_share_into_active_stakes(
    market: TestClient, clock: FakeClock
) -> None:
    gpu = register(market, miner_key=MINER_KEY, name="RTX 4090", price="3.00000000")
    online(market, MINER_KEY)
    a = stake(market, CLIENT_KEY, "100")
    b = stake(market, CLIENT2_KEY, "300")
    booked = new_booking(market, gpu, CLIENT_KEY, hours=2)
    clock.advance(hours=2, seconds=1)
    assert market.app.state.sweeper.run_once()["bookings_completed"] >= 1  # type: ignore[attr-defined]
    db: Database = market.app.state.db  # type: ignore[attr-defined]
    with db.read() as session:
        settled = session.get(Booking, booked["booking_id"])
        assert settled is not None
        assert settled.status == "completed"
        share = settled.stakers_reward
        assert share is not None
        assert share == (Decimal(booked["total_cost"]) * Decimal("0.05")).quantize(
            Decimal("0.00000001")
        )
        assert conservation(session).holds
    ra = Decimal(market.get(f"/v1/stake/{a['id']}", headers=auth(CLIENT_KEY)).json()["rewards"])
    rb = Decimal(market.get(f"/v1/stake/{b['id']}", headers=auth(CLIENT2_KEY)).json()["rewards"])
    assert ra + rb == share
    assert abs(rb - 3 * ra) <= Decimal("0.00000003")
    assert pool(market)["total_rewards"] == str(share)


# ---- races against a live coordinator ----------------------------------------------------------


def _run_threads(target: Callable[[int], None], n: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrapped(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # collect and report in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_concurrent_stake_unbond_complete_keeps_staker_count_exact(db_url: str) -> None:
    stakers = 6
    rounds = 4
    env = {"COORDINATOR_UNBONDING_PERIOD_S": "0"}
    with live_coordinator(db_url, env=env) as base, httpx.Client(base_url=base, timeout=30) as http:
        online(http, MINER_KEY)
        keys = []
        for i in range(stakers):
            resp = http.post(
                "/v1/admin/api-keys",
                json={"role": "client", "subject": f"staker-{i}"},
                headers=auth(ADMIN_KEY),
            )
            keys.append(resp.json()["api_key"])
            credit(http, f"staker-{i}", "100000")
        observed: list[int] = []
        stop = threading.Event()

        def watch() -> None:
            with httpx.Client(base_url=base, timeout=30) as watcher:
                while not stop.is_set():
                    observed.append(watcher.get("/v1/staking/pools/host-01").json()["staker_count"])

        watcher = threading.Thread(target=watch)
        watcher.start()

        def work(i: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as mine:
                keep = mine.post(
                    "/v1/stake",
                    json={"miner_id": "host-01", "amount": "100"},
                    headers=auth(keys[i]),
                )
                assert keep.status_code == 201, keep.text
                for _ in range(rounds):
                    made = mine.post(
                        "/v1/stake",
                        json={"miner_id": "host-01", "amount": "150"},
                        headers=auth(keys[i]),
                    ).json()
                    sid = made["id"]
                    assert (
                        mine.post(f"/v1/stake/{sid}/unbond", headers=auth(keys[i])).status_code
                        == 200
                    )
                    # Two racing completes of the same stake: exactly one pays out.
                    codes = sorted(
                        r.status_code
                        for r in _parallel(
                            lambda sid=sid: mine.post(
                                f"/v1/stake/{sid}/complete", headers=auth(keys[i])
                            ),
                            lambda sid=sid: httpx.post(
                                f"{base}/v1/stake/{sid}/complete", headers=auth(keys[i]), timeout=30
                            ),
                        )
                    )
                    assert codes in ([200, 400], [200, 409]), codes
                if i % 2 == 0:  # half of the stakers leave with their last stake too
                    sid = keep.json()["id"]
                    assert (
                        mine.post(f"/v1/stake/{sid}/unbond", headers=auth(keys[i])).status_code
                        == 200
                    )
                    assert (
                        mine.post(f"/v1/stake/{sid}/complete", headers=auth(keys[i])).status_code
                        == 200
                    )

        errors = _run_threads(work, stakers)
        stop.set()
        watcher.join(timeout=60)
        assert errors == []
        assert observed
        assert all(0 <= count <= stakers for count in observed)
        final = http.get("/v1/staking/pools/host-01").json()
        everyone = http.get("/v1/stakes?limit=500", headers=auth(ADMIN_KEY)).json()
        held = [s for s in everyone if s["status"] in ("active", "unbonding")]
        assert final["staker_count"] == len({s["staker"] for s in held}) == stakers // 2
        assert final["total_staked"] == f"{100 * len(held)}.00000000"
        assert len(everyone) == stakers * (rounds + 1)
        for i in range(stakers):
            me = http.get("/v1/accounts/me", headers=auth(keys[i])).json()
            kept = Decimal(100) if i % 2 else ZERO
            assert Decimal(me["staked"]) == kept
            assert Decimal(me["balance"]) == Decimal(100000) - kept
    database = Database(db_url)
    try:
        with database.read() as session:
            assert conservation(session).holds
    finally:
        database.dispose()


def _parallel(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def run(call: Callable[[], httpx.Response]) -> None:
        response = call()
        with lock:
            results.append(response)

    errors = _run_threads(lambda i: run(calls[i]), len(calls))
    if errors:
        raise errors[0]
    return results
