"""The partitioned list query returns exactly what the single ordered query returns."""

from __future__ import annotations

from decimal import Decimal
from itertools import cycle
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator_stub.db.models import Gpu
from coordinator_stub.market import search
from coordinator_stub.market.search import GpuFilters, search_gpus
from tests.coordinator.market_support import book, credit, online, register
from tests.support import CLIENT_KEY, MINER2_KEY, MINER_KEY

MODELS = ["NVIDIA H100", "NVIDIA A100_40GB", "RTX 4090", "RTX 3090", "Tesla T4", "L4 100%"]
MEMORY = [16, 24, 24, 40, 80, 48]

filters_strategy = st.builds(
    GpuFilters,
    available=st.sampled_from([None, True, False]),
    status=st.sampled_from([None, "available", "booked", "offline"]),
    model=st.sampled_from([None, "", "nvidia", "RTX", "90", "a100_", "%", "_", "h100", "x"]),
    memory_min=st.sampled_from([None, 0, 16, 23.5, 24, 41, 200]),
    price_max=st.sampled_from([None, Decimal("0.3"), Decimal("1"), Decimal("5")]),
    region=st.sampled_from([None, "eu", "US"]),
    miner_id=st.sampled_from([None, "host-01", "host-02"]),
    limit=st.integers(min_value=1, max_value=12),
    offset=st.integers(min_value=0, max_value=30),
)


def single_query_ids(client: TestClient, filters: GpuFilters) -> list[str]:
    app: Any = client.app
    now = app.state.clock()
    query = (
        search._filtered(filters, now, 30)
        .order_by(Gpu.price_per_hour, Gpu.id)
        .limit(filters.limit)
        .offset(filters.offset)
    )
    with app.state.db.read() as session:
        return [row[0].id for row in session.execute(query)]


def test_partitioned_pages_equal_the_single_query(client: TestClient) -> None:
    prices = cycle(["0.25", "0.5", "0.5", "1.0", "2.0", "0.3", "4"])
    regions = cycle(["eu", "EU", "us", None])
    gpus = []
    for n in range(30):
        gpus.append(
            register(
                client,
                miner_key=MINER2_KEY if n % 4 == 0 else MINER_KEY,
                name=MODELS[n % len(MODELS)],
                memory_gb=MEMORY[n % len(MEMORY)],
                price=next(prices),
                region=next(regions),
            )
        )
    online(client)  # host-02's GPUs stay offline
    credit(client, "alice", "1000")
    for gpu in (gpus[1], gpus[5], gpus[7], gpus[10]):  # host-01 ones (online)
        assert book(client, gpu, CLIENT_KEY, hours=1).status_code == 201
    app: Any = client.app

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(filters=filters_strategy)
    def check(filters: GpuFilters) -> None:
        with app.state.db.read() as session:
            got = search_gpus(session, filters, now=app.state.clock(), offline_after_s=30)
        assert [row[0].id for row in got] == single_query_ids(client, filters)

    check()


def test_model_partitions_are_used_and_empty_when_nothing_matches(client: TestClient) -> None:
    register(client, name="RTX 4090")
    register(client, name="RTX 3090")
    app: Any = client.app
    with app.state.db.read() as session:
        parts = search._partitions(session, GpuFilters(model="rtx"))
        assert parts is not None
        assert len(parts) == 2
        assert search._partitions(session, GpuFilters(model="h100")) == []
        memory = search._partitions(session, GpuFilters(memory_min=1))
        assert memory is not None
        assert len(memory) == 1
        assert search._partitions(session, GpuFilters(region="eu")) is None
