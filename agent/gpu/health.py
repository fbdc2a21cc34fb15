"""GPU health from samples: lost / Xid / ECC / hung driver / throttling, with hysteresis (pure).

A worse reading takes effect at once; getting better needs `recover_after_ok_samples`
consecutive better readings, so a flapping GPU does not flap its status and a GPU that came
back (a transient Xid, a driver that answered again, a lost GPU reset by the operator) is
offered again without restarting the agent. No clock, no I/O: feed it samples in order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from agent.gpu.backend import Health, HealthStatus

# Application Xids (the process's fault, not the GPU's): k8s-device-plugin's default list.
DEFAULT_IGNORED_XIDS: frozenset[int] = frozenset({13, 31, 43, 45, 68, 109})
DEFAULT_RECOVER_AFTER_OK_SAMPLES = 3

# Clock-event reasons that mean the hardware is protecting itself, not just idling or capped.
DEGRADING_THROTTLE_REASONS: frozenset[str] = frozenset(
    {"hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown"}
)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Operator knobs for health classification (`[health]` in the config)."""

    ignore_xids: frozenset[int] = DEFAULT_IGNORED_XIDS
    recover_after_ok_samples: int = DEFAULT_RECOVER_AFTER_OK_SAMPLES

    def __post_init__(self) -> None:
        if self.recover_after_ok_samples < 1:
            raise ValueError("recover_after_ok_samples must be >= 1")

    @classmethod
    def of(cls, ignore_xids: Iterable[int], recover_after_ok_samples: int) -> HealthPolicy:
        """Build a policy from any iterable of Xid codes."""
        return cls(frozenset(ignore_xids), recover_after_ok_samples)


@dataclass(frozen=True, slots=True)
class Observation:
    """The health-relevant part of one sample."""

    lost: bool = False
    driver_unresponsive: bool = False
    xid_events: tuple[int, ...] = ()
    ecc_uncorrected_volatile: int | None = None
    throttle_reasons: tuple[str, ...] | None = None


def classify(obs: Observation, policy: HealthPolicy, previous_ecc: int | None) -> Health:
    """Health of one reading on its own, before hysteresis.

    `previous_ecc` is the uncorrected volatile ECC count of the previous reading (None when
    there was none); a count that grew — or is non-zero on the first reading — is a fault.
    """
    if obs.lost:
        return Health(HealthStatus.LOST, "gpu_is_lost")
    if obs.driver_unresponsive:
        return Health(HealthStatus.UNHEALTHY, "driver_unresponsive")
    critical = sorted({x for x in obs.xid_events if x not in policy.ignore_xids})
    if critical:
        return Health(HealthStatus.UNHEALTHY, "xid " + ",".join(str(x) for x in critical))
    ecc = obs.ecc_uncorrected_volatile
    if ecc is not None and ecc > (previous_ecc or 0):
        return Health(HealthStatus.UNHEALTHY, f"ecc_uncorrected {ecc}")
    slow = sorted(DEGRADING_THROTTLE_REASONS.intersection(obs.throttle_reasons or ()))
    if slow:
        return Health(HealthStatus.DEGRADED, "throttled " + ",".join(slow))
    return Health(HealthStatus.OK)


@dataclass(slots=True)
class _GpuHealthState:
    current: Health = field(default_factory=lambda: Health(HealthStatus.OK))
    cause: str | None = None  # the reason that made it non-ok (kept while recovering)
    better_streak: int = 0
    window_worst: Health | None = None  # worst reading of the current better streak
    last_ecc: int | None = None


def step(state: _GpuHealthState, raw: Health, policy: HealthPolicy) -> Health:
    """Apply one raw reading to `state` with hysteresis; returns the health to report.

    After `recover_after_ok_samples` consecutive readings better than the current status, the
    status becomes the worst of those readings: so ok needs that many ok readings in a row,
    and a lost GPU that now reports a hung driver steps down to unhealthy, not to ok.
    """
    if raw.status.severity >= state.current.status.severity:
        state.current = raw
        state.cause = raw.reason
        state.better_streak = 0
        state.window_worst = None
        return raw
    state.better_streak += 1
    worst = state.window_worst
    if worst is None or raw.status.severity >= worst.status.severity:
        state.window_worst = worst = raw
    if state.better_streak >= policy.recover_after_ok_samples:
        state.current = worst
        state.cause = worst.reason
        state.better_streak = 0
        state.window_worst = None
        return worst
    need = policy.recover_after_ok_samples
    reason = f"{state.cause} (recovering {state.better_streak}/{need})"
    return Health(state.current.status, reason)


class HealthTracker:
    """Per-GPU hysteresis over a stream of observations, keyed by anything (uuid or index)."""

    def __init__(self, policy: HealthPolicy | None = None) -> None:
        self.policy = policy or HealthPolicy()
        self._states: dict[Hashable, _GpuHealthState] = {}

    def update(self, key: Hashable, obs: Observation) -> Health:
        """Feed one reading of GPU `key`; returns its health after hysteresis."""
        state = self._states.setdefault(key, _GpuHealthState())
        raw = classify(obs, self.policy, state.last_ecc)
        if obs.ecc_uncorrected_volatile is not None:
            state.last_ecc = obs.ecc_uncorrected_volatile
        return step(state, raw, self.policy)

    def current(self, key: Hashable) -> Health:
        """Last reported health of `key` (ok when never seen)."""
        state = self._states.get(key)
        return state.current if state is not None else Health(HealthStatus.OK)

    def forget(self, key: Hashable) -> None:
        """Drop the history of a GPU that went away."""
        self._states.pop(key, None)
