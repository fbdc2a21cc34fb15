"""GPU status follows the agent: SIGTERM, a silent death, an unhealthy GPU, a provider fault;
and the agent's systemd notifications."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.e2e.harness import OFFLINE_AFTER_S, Agent, Renter, wait_for


def _four_available(renter: Renter) -> list[dict[str, object]]:
    return wait_for(
        "4 available GPUs",
        lambda: (g := renter.gpus()) and all(x["status"] == "available" for x in g) and g,
    )


def test_sigterm_takes_the_gpus_offline_at_once(
    renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    _four_available(renter)
    asked = time.monotonic()
    assert agent.terminate() == 0
    took_s = time.monotonic() - asked
    print(f"\nSIGTERM → exit 0 in {took_s:.2f}s")
    assert took_s < 5
    assert renter.statuses() == ["offline"] * 4  # deregistered: no wait for offline_after_s
    assert agent.events("miner_deregistered")


def test_silent_death_goes_offline_after_offline_after_s(
    renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent().start()
    _four_available(renter)
    agent.kill9()
    killed = time.monotonic()
    assert renter.statuses() == ["available"] * 4  # no goodbye: the coordinator cannot know yet
    wait_for("offline", lambda: renter.statuses() == ["offline"] * 4, timeout_s=OFFLINE_AFTER_S + 3)
    after_s = time.monotonic() - killed
    print(f"\nkill -9 → offline after {after_s:.2f}s (offline_after_s = {OFFLINE_AFTER_S})")
    assert after_s >= OFFLINE_AFTER_S - 0.6  # the last heartbeat may predate the kill a little


def test_unhealthy_gpu_goes_offline_and_cannot_be_booked(
    renter: Renter, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent(
        faults=[{"kind": "lost", "at_sample": 5, "unit": 1, "duration_samples": 1_000_000}]
    ).start()
    by_uuid = {}

    def one_offline() -> bool:
        by_uuid.clear()
        by_uuid.update({g["uuid"]: g for g in renter.gpus()})
        return sorted(g["status"] for g in by_uuid.values()) == ["available"] * 3 + ["offline"]

    wait_for("GPU 1 offline", one_offline, timeout_s=10)
    [sick] = [g for g in by_uuid.values() if g["status"] == "offline"]
    assert sick["uuid"].endswith("-1")
    assert sick["health"] == "lost"
    response = renter.book(sick["id"], duration_s=60)
    assert response.status_code == 409, response.text
    assert agent.proc is not None
    assert agent.proc.poll() is None


def test_sd_notify_ready_status_watchdog_reload_stopping(
    make_agent: Callable[..., Agent],
) -> None:
    agent = make_agent(watchdog_usec=1_000_000).start()
    assert agent.notify is not None
    wait_for("two watchdog pings", lambda: agent.notify.texts().count("WATCHDOG=1") >= 2)
    ready = next(t for t in agent.notify.texts() if "READY=1" in t)
    assert "STATUS=4 GPUs, 0 leased, coordinator ok" in ready

    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGHUP)
    wait_for("RELOADING=1", lambda: agent.notify.first("RELOADING=1"))
    texts = agent.notify.texts()
    reloading = next(i for i, t in enumerate(texts) if t.startswith("RELOADING=1"))
    assert "MONOTONIC_USEC=" in texts[reloading]
    wait_for(
        "READY=1 after the reload",
        lambda: any("READY=1" in t for t in agent.notify.texts()[reloading + 1 :]),
    )
    assert agent.events("config_reloaded")

    assert agent.terminate() == 0
    texts = agent.notify.texts()
    assert "STOPPING=1" in texts
    assert "WATCHDOG=1" not in texts[texts.index("STOPPING=1") :]
    # nothing but notifications and watchdog pings: no STATUS spam while nothing changes
    statuses = [t for t in agent.notify.texts() if t.startswith("STATUS=")]
    assert len(statuses) <= 2


def test_reload_with_a_broken_config_keeps_running(make_agent: Callable[..., Agent]) -> None:
    agent = make_agent().start()
    assert agent.proc is not None
    agent.config.write_text(agent.config.read_text() + "\n[agent]\nbogus = 1\n")
    agent.proc.send_signal(signal.SIGHUP)
    [failed] = wait_for("config_reload_failed", lambda: agent.events("config_reload_failed"))
    assert "bogus" in failed["error"] or "agent" in failed["error"]
    time.sleep(0.5)
    assert agent.proc.poll() is None
    assert agent.terminate() == 0
