"""Lease reconciliation (pure): start / reject / stop / expire, never earlier than end_time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent.lease.reconcile import GpuView, Reack, Reject, Start, Stop, Update, next_expiry, plan
from agent.lease.state import HeldLease
from agent.link.wire import DesiredLease

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
END = NOW + timedelta(hours=1)
GPUS = {
    "GPU-0": GpuView(uuid="GPU-0", index=0, gpu_id="gpu_0", healthy=True),
    "GPU-1": GpuView(uuid="GPU-1", index=1, gpu_id="gpu_1", healthy=False, health_reason="xid 79"),
}


def desired(
    booking_id: str = "bk_1",
    *,
    uuid: str = "GPU-0",
    state: str = "active",
    generation: int = 1,
    end: datetime = END,
) -> DesiredLease:
    return DesiredLease(
        booking_id=booking_id,
        gpu_id="gpu_" + uuid[-1],
        gpu_uuid=uuid,
        client_id="alice",
        start_time=NOW - timedelta(minutes=1),
        end_time=end,
        generation=generation,
        state=state,  # type: ignore[arg-type]
    )


def held(
    booking_id: str = "bk_1", *, phase: str = "started", generation: int = 1, end: datetime = END
) -> HeldLease:
    return HeldLease(
        booking_id=booking_id,
        gpu_uuid="GPU-0",
        gpu_index=0,
        end_time=end,
        generation=generation,
        phase=phase,  # type: ignore[arg-type]
    )


def test_new_active_lease_on_a_healthy_gpu_starts() -> None:
    actions = plan({}, [desired()], GPUS, NOW)
    assert len(actions) == 1
    assert isinstance(actions[0], Start)
    assert actions[0].gpu.index == 0


def test_lease_on_an_unhealthy_gpu_is_rejected_with_the_reason() -> None:
    [action] = plan({}, [desired(uuid="GPU-1")], GPUS, NOW)
    assert isinstance(action, Reject)
    assert "xid 79" in action.reason


def test_lease_on_a_missing_gpu_is_rejected() -> None:
    [action] = plan({}, [desired(uuid="GPU-9")], GPUS, NOW)
    assert isinstance(action, Reject)
    assert "not present" in action.reason


def test_held_lease_is_not_started_twice() -> None:
    for phase in ("starting", "started", "stopping", "stopped", "rejected"):
        assert plan({"bk_1": held(phase=phase)}, [desired()], GPUS, NOW) == []


def test_ended_lease_stops_with_the_new_generation() -> None:
    actions = plan({"bk_1": held()}, [desired(state="ended", generation=2)], GPUS, NOW)
    assert actions == [Stop("bk_1", "released", 2)]


def test_lease_missing_from_an_authoritative_list_is_withdrawn() -> None:
    assert plan({"bk_1": held()}, [], GPUS, NOW) == [Stop("bk_1", "withdrawn", 1)]


def test_coordinator_unreachable_keeps_the_lease_until_end_time() -> None:
    assert plan({"bk_1": held()}, None, GPUS, NOW) == []
    assert plan({"bk_1": held()}, None, GPUS, END - timedelta(microseconds=1)) == []
    assert plan({"bk_1": held()}, None, GPUS, END) == [Stop("bk_1", "expired", 1)]


def test_expired_and_released_at_once_stops_once() -> None:
    actions = plan({"bk_1": held()}, [desired(state="ended", generation=2)], GPUS, END)
    assert actions == [Stop("bk_1", "released", 2)]


def test_active_lease_already_past_its_end_is_not_started() -> None:
    assert plan({}, [desired(end=NOW)], GPUS, NOW) == []


def test_generation_or_end_change_of_a_held_lease_is_an_update() -> None:
    [action] = plan({"bk_1": held()}, [desired(generation=3)], GPUS, NOW)
    assert isinstance(action, Update)
    assert action.lease.generation == 3


def test_stopped_lease_ended_at_a_newer_generation_is_reacked() -> None:
    mine = held(phase="stopped")
    mine.owe_ack("stopped", 1)
    mine.acked = True
    actions = plan({"bk_1": mine}, [desired(state="ended", generation=2)], GPUS, NOW)
    assert actions == [Reack("bk_1", 2)]


def test_unknown_ended_lease_is_ignored() -> None:
    assert plan({}, [desired(state="ended", generation=2)], GPUS, NOW) == []


def test_next_expiry_is_the_earliest_active_end() -> None:
    leases = {
        "a": held("a", end=END),
        "b": held("b", end=END - timedelta(minutes=5)),
        "c": held("c", phase="stopped", end=NOW),
    }
    assert next_expiry(leases) == END - timedelta(minutes=5)
    assert next_expiry({}) is None


@given(
    offset_s=st.floats(min_value=-7200, max_value=7200, allow_nan=False),
    reachable=st.booleans(),
)
def test_a_lease_never_ends_before_its_end_time(offset_s: float, reachable: bool) -> None:
    now = END + timedelta(seconds=offset_s)
    actions = plan({"bk_1": held()}, [desired()] if reachable else None, GPUS, now)
    stops = [a for a in actions if isinstance(a, Stop)]
    if now < END:
        assert stops == []
    else:
        assert stops == [Stop("bk_1", "expired", 1)]
