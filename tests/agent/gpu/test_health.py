"""Health classification and hysteresis (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.gpu.backend import HealthStatus
from agent.gpu.health import HealthPolicy, HealthTracker, Observation, classify

OK = Observation()
LOST = Observation(lost=True)
HUNG = Observation(driver_unresponsive=True)
HOT = Observation(throttle_reasons=("hw_thermal_slowdown",))


def test_classification_order_and_reasons() -> None:
    policy = HealthPolicy()
    assert classify(LOST, policy, None).status is HealthStatus.LOST
    assert classify(HUNG, policy, None).reason == "driver_unresponsive"
    assert classify(Observation(xid_events=(79, 48, 79)), policy, None).reason == "xid 48,79"
    assert classify(Observation(xid_events=(13, 43)), policy, None).status is HealthStatus.OK
    assert classify(Observation(ecc_uncorrected_volatile=3), policy, 3).status is HealthStatus.OK
    assert (
        classify(Observation(ecc_uncorrected_volatile=4), policy, 3).reason == "ecc_uncorrected 4"
    )
    assert classify(HOT, policy, None).status is HealthStatus.DEGRADED
    assert (
        classify(Observation(throttle_reasons=("gpu_idle", "sw_power_cap")), policy, None).status
        is HealthStatus.OK
    )


def test_operator_ignore_list_replaces_the_default() -> None:
    policy = HealthPolicy.of([79], 3)
    assert classify(Observation(xid_events=(79,)), policy, None).status is HealthStatus.OK
    assert classify(Observation(xid_events=(13,)), policy, None).status is HealthStatus.UNHEALTHY


def test_worse_is_immediate_better_needs_n_consecutive_samples() -> None:
    tracker = HealthTracker(HealthPolicy(recover_after_ok_samples=3))
    assert tracker.update("g", HOT).status is HealthStatus.DEGRADED
    assert tracker.update("g", LOST).status is HealthStatus.LOST
    assert tracker.update("g", OK).status is HealthStatus.LOST
    assert tracker.update("g", OK).status is HealthStatus.LOST
    # The same fault again in the middle of recovery restarts the count.
    assert tracker.update("g", LOST).status is HealthStatus.LOST
    assert [tracker.update("g", OK).status for _ in range(3)] == [
        HealthStatus.LOST,
        HealthStatus.LOST,
        HealthStatus.OK,
    ]


def test_recovery_steps_down_to_the_worst_recent_reading_not_straight_to_ok() -> None:
    tracker = HealthTracker(HealthPolicy(recover_after_ok_samples=2))
    tracker.update("g", LOST)
    assert tracker.update("g", HUNG).status is HealthStatus.LOST
    assert tracker.update("g", OK).status is HealthStatus.UNHEALTHY  # worst of (HUNG, OK)
    assert tracker.update("g", OK).status is HealthStatus.UNHEALTHY
    assert tracker.update("g", OK).status is HealthStatus.OK


def test_gpus_are_tracked_independently() -> None:
    tracker = HealthTracker(HealthPolicy(recover_after_ok_samples=2))
    tracker.update(0, LOST)
    assert tracker.update(1, OK).status is HealthStatus.OK
    assert tracker.current(0).status is HealthStatus.LOST


observations = st.sampled_from([OK, LOST, HUNG, HOT, Observation(xid_events=(79,))])


@given(st.lists(observations, max_size=40), st.integers(min_value=1, max_value=5))
def test_hysteresis_properties(stream: list[Observation], n: int) -> None:
    policy = HealthPolicy(recover_after_ok_samples=n)
    tracker = HealthTracker(policy)
    reported = []
    for obs in stream:
        raw = classify(obs, policy, None)
        got = tracker.update("g", obs)
        # Never better than the reading itself; never ok with a reason, never non-ok without one.
        assert got.status.severity >= raw.status.severity
        assert (got.reason is None) == (got.status is HealthStatus.OK)
        reported.append(got.status)
    # ok is reported only after n consecutive ok readings since the last bad one (or none ever).
    for i, status in enumerate(reported):
        if status is HealthStatus.OK:
            recent = stream[max(0, i - n + 1) : i + 1]
            bad_before = any(
                classify(o, policy, None).status is not HealthStatus.OK for o in stream[: i + 1]
            )
            if bad_before:
                assert len(recent) == n
                assert all(o == OK for o in recent)
