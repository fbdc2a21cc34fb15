"""Fixtures shared by the coordinator tests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.coordinator.market_support import credit, online, register


@pytest.fixture
def gpu(client: TestClient) -> str:
    """One online GPU of host-01 (NVIDIA RTX 4090, 0.5 AITBC/h); alice and bob hold 100 each."""
    gpu_id = register(client)
    online(client)
    credit(client, "alice", "100")
    credit(client, "bob", "100")
    return gpu_id
