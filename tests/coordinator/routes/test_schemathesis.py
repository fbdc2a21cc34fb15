"""Fuzz every endpoint of a running coordinator from its own `/openapi.json` (docs/benchmarks.md).

A real `aitbc-coordinator serve` process, a small seeded market (GPUs, a booking, a stake, a
bid, offers) and a valid admin key, so requests get past auth into the handlers. Bounded: a
few examples per operation, no shrinking budget beyond hypothesis' default. Two checks only:
no 5xx, and every documented response matches its schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.coordinator.market_support import credit, new_booking, online, register
from tests.support import (
    ADMIN_KEY,
    CLIENT_KEY,
    MINER2_KEY,
    MINER_KEY,
    auth,
    database_url,
    live_coordinator,
)

MAX_EXAMPLES = 30


def _seed(base: str) -> dict[str, str]:
    """A small market; returns real ids for path parameters, so fuzzing reaches the handlers."""
    with httpx.Client(base_url=base, timeout=30) as http:
        gpus = [register(http, miner_key=MINER_KEY, name="RTX 4090", price=p) for p in ("1", "2")]
        register(http, miner_key=MINER2_KEY, name="A100", price="3", memory_gb=80)
        online(http, MINER_KEY, region="eu-west")
        online(http, MINER2_KEY)
        credit(http, "alice", "100000")
        booking = new_booking(http, gpus[0], CLIENT_KEY, hours=1)
        resp = http.post(
            "/v1/stake", json={"miner_id": "host-01", "amount": "100"}, headers=auth(CLIENT_KEY)
        )
        assert resp.status_code == 201
        stake_id = resp.json()["id"]
        bid = {"provider": "host-01", "capacity": 1, "price": "0.5"}
        resp = http.post("/v1/marketplace/bids", json=bid, headers=auth(CLIENT_KEY))
        assert resp.status_code == 202
        bid_id = resp.json()["id"]
        assert http.post("/v1/marketplace/sync-offers", headers=auth(ADMIN_KEY)).status_code == 200
    return {
        "gpu_id": gpus[1],
        "stake_id": stake_id,
        "bid_id": bid_id,
        "booking_id": booking["booking_id"],
        "miner_id": "host-01",
        "subject": "alice",
        "model": "RTX",
    }


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live_market(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    with live_coordinator(database_url(str(request.param), tmp)) as base:
        yield base, _seed(base)


def _cases(operation: APIOperation, ids: dict[str, str]) -> st.SearchStrategy[Case]:
    """Valid and invalid input; where the path names a resource, sometimes a real one."""
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    real = {name: ids[name] for name in re.findall(r"{(\w+)}", operation.path) if name in ids}
    if real:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real))
    return st.one_of(strategies)


def test_every_endpoint_survives_fuzzing(live_market: tuple[str, dict[str, str]]) -> None:
    base, ids = live_market
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    operations = 0
    calls: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=_cases(operation, ids))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            derandomize=True,
            database=None,
        )
        def fuzz(case: Case) -> None:
            response = case.call_and_validate(
                base_url=base,
                headers=auth(ADMIN_KEY),
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )
            calls[response.status_code] = calls.get(response.status_code, 0) + 1

        try:
            fuzz()
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 30  # every router is mounted and documented
    assert not failures, "\n\n".join(failures)
    # The run reached the handlers, not only validation and auth: some calls succeeded.
    assert sum(n for code, n in calls.items() if code < 300) > operations


NUL_REQUESTS = [
    ("GET", "/v1/marketplace/pricing/a%00b", None),
    ("GET", "/v1/marketplace/gpu/gpu_%00/quote", None),
    ("GET", "/v1/stake/st_%00", None),
    ("POST", "/v1/stake/st_%00/unbond", None),
    ("GET", "/v1/staking/pools/h%00", None),
    ("GET", "/v1/stakes?miner_id=a%00", None),
    ("GET", "/v1/marketplace/offers?gpu_model=a%00&region=b%00", None),
    ("GET", "/v1/marketplace/miner-offers?provider=a%00", None),
    ("GET", "/v1/marketplace/bids?provider=a%00", None),
    ("GET", "/v1/marketplace/bids/bid_%00", None),
    ("POST", "/v1/stake", {"miner_id": "a\x00", "amount": "100"}),
    ("POST", "/v1/marketplace/bids", {"provider": "a\x00", "capacity": 1, "price": 1}),
    ("POST", "/v1/marketplace/bids", {"provider": "a", "capacity": 1, "price": 1, "notes": "\x00"}),
]


@pytest.mark.parametrize(("method", "path", "body"), NUL_REQUESTS)
def test_nul_characters_are_a_4xx_on_every_database(
    client: TestClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    # PostgreSQL refuses NUL in text (a driver error); found by fuzzing, pinned here. The
    # in-process client re-raises any server exception, so a 500 fails loudly.
    resp = client.request(method, path, json=body, headers=auth(ADMIN_KEY))
    assert resp.status_code in (404, 422), (resp.status_code, resp.text)
