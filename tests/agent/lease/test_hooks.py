"""Hooks: env, timeout, errors; the lease worker runs each hook at most once per lease."""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import structlog

from agent.config import LeasesSettings
from agent.lease.hooks import lease_env, rfc3339, run_hook
from agent.lease.reconcile import GpuView
from agent.lease.state import AgentState, HeldLease, StateStore
from agent.lease.worker import LeaseWorker
from agent.link.client import CoordinatorClient
from agent.link.wire import DesiredLease

END = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)


def test_lease_env_names_and_formats() -> None:
    env = lease_env(
        booking_id="bk_1", gpu_uuid="GPU-0", gpu_index=3, client_id="alice", end_time=END
    )
    assert env == {
        "AITBC_LEASE_ID": "bk_1",
        "AITBC_GPU_UUID": "GPU-0",
        "AITBC_GPU_INDEX": "3",
        "AITBC_CLIENT_ID": "alice",
        "AITBC_LEASE_END": "2099-01-01T12:00:00.000000Z",
    }
    assert rfc3339(END).endswith("Z")


def test_hook_sees_the_lease_env(tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    code = (
        "import json, os; "
        "env = {k: v for k, v in os.environ.items() if k.startswith('AITBC_')}; "
        f"json.dump(env, open({str(out)!r}, 'w'))"
    )
    result = run_hook(
        [sys.executable, "-c", code],
        {"AITBC_LEASE_ID": "bk_9", "AITBC_GPU_INDEX": "1"},
        timeout_s=30,
    )
    assert result.ok, result.describe()
    assert json.loads(out.read_text()) == {"AITBC_LEASE_ID": "bk_9", "AITBC_GPU_INDEX": "1"}


def test_failing_hook_reports_its_exit_code() -> None:
    result = run_hook(["sh", "-c", "exit 7"], {}, timeout_s=10)
    assert not result.ok
    assert result.exit_code == 7
    assert result.describe() == "exited 7"


def test_hook_overrunning_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    started = time.monotonic()
    result = run_hook(["sh", "-c", f"(sleep 2; touch {marker}) & sleep 30"], {}, timeout_s=0.5)
    assert result.timed_out
    assert not result.ok
    assert time.monotonic() - started < 5
    time.sleep(2.5)
    assert not marker.exists()  # the background child died with its process group


def test_missing_hook_binary_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = run_hook([str(tmp_path / "no-such-hook")], {}, timeout_s=5)
    assert not result.ok
    assert result.error is not None
    assert "could not run" in result.describe()


def test_empty_argv_is_a_successful_no_op() -> None:
    assert run_hook([], {}, timeout_s=1).ok


def test_hook_output_never_reaches_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    run_hook(["sh", "-c", "echo from-hook"], {}, timeout_s=10)
    captured = capfd.readouterr()
    assert "from-hook" not in captured.out
    assert "from-hook" in captured.err


# -- the lease worker: at most once ---------------------------------------------------------


class FakeCoordinator:
    """Accepts every ack and records it."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, dict[str, object]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        booking_id = request.url.path.split("/")[-2]
        self.acks.append((booking_id, json.loads(request.content)))
        return httpx.Response(200, json={"booking_id": booking_id})


def make_worker(
    tmp_path: Path, on_start: list[str], on_end: list[str], state: AgentState | None = None
) -> tuple[LeaseWorker, FakeCoordinator, StateStore]:
    store = StateStore(tmp_path / "state")
    store.ensure_dir()
    state = state if state is not None else store.load()
    fake = FakeCoordinator()
    client = CoordinatorClient(
        "http://coordinator.test", api_key="k", transport=httpx.MockTransport(fake)
    )
    gpus = {"GPU-0": GpuView(uuid="GPU-0", index=0, gpu_id="gpu_0", healthy=True)}
    worker = LeaseWorker(
        state=state,
        store=store,
        lock=threading.RLock(),
        settings=lambda: LeasesSettings(on_start=on_start, on_end=on_end, hook_timeout_s=30),
        client=lambda: client,
        gpus=lambda: gpus,
    )
    return worker, fake, store


def desired(state: str = "active", generation: int = 1) -> DesiredLease:
    return DesiredLease(
        booking_id="bk_1",
        gpu_id="gpu_0",
        gpu_uuid="GPU-0",
        client_id="alice",
        start_time=END - timedelta(hours=1),
        end_time=END,
        generation=generation,
        state=state,  # type: ignore[arg-type]
    )


def counting_hook(tmp_path: Path, name: str) -> list[str]:
    """A hook that appends the phase it finds in the state file to `<name>.log`."""
    log = tmp_path / f"{name}.log"
    state = tmp_path / "state" / "state.json"
    code = (
        "import json, os; "
        f"leases = json.load(open({str(state)!r}))['leases']; "
        "phase = leases[os.environ['AITBC_LEASE_ID']]['phase']; "
        f"open({str(log)!r}, 'a').write(phase + '\\n')"
    )
    return [sys.executable, "-c", code]


def test_starting_is_recorded_before_on_start_and_started_after(tmp_path: Path) -> None:
    worker, fake, store = make_worker(
        tmp_path, counting_hook(tmp_path, "start"), counting_hook(tmp_path, "end")
    )
    worker.offer(1, [desired()])
    worker.step()

    assert (tmp_path / "start.log").read_text() == "starting\n"
    lease = store.load().leases["bk_1"]
    assert lease.phase == "started"
    assert lease.acked
    assert fake.acks == [("bk_1", {"generation": 1, "state": "started", "detail": None})]

    worker.offer(2, [desired()])  # the same desired set again: no second on_start
    worker.step()
    assert (tmp_path / "start.log").read_text() == "starting\n"

    worker.offer(3, [desired("ended", generation=2)])
    worker.step()
    assert (tmp_path / "end.log").read_text() == "stopping\n"
    assert store.load().leases["bk_1"].phase == "stopped"
    assert fake.acks[-1] == ("bk_1", {"generation": 2, "state": "stopped", "detail": "released"})

    worker.offer(4, [desired()])  # a stale "active" view never restarts a stopped lease
    worker.step()
    assert (tmp_path / "start.log").read_text() == "starting\n"


@pytest.mark.parametrize("phase", ["starting", "started"])
def test_lease_found_after_a_crash_is_resumed_without_rerunning_on_start(
    tmp_path: Path, phase: str
) -> None:
    state = AgentState()
    state.leases["bk_1"] = HeldLease(
        booking_id="bk_1",
        gpu_uuid="GPU-0",
        gpu_index=0,
        end_time=END,
        generation=1,
        phase=phase,  # type: ignore[arg-type]
    )
    if phase == "started":  # killed after on_start, before the ack was accepted
        state.leases["bk_1"].owe_ack("started", 1)
    worker, fake, store = make_worker(tmp_path, counting_hook(tmp_path, "start"), [], state)
    store.save(state)
    worker.resume()
    worker.offer(1, [desired()])
    worker.step()

    assert not (tmp_path / "start.log").exists()
    assert store.load().leases["bk_1"].phase == "started"
    assert [ack["state"] for _, ack in fake.acks] == ["started"]


def test_failing_on_start_rejects_the_lease(tmp_path: Path) -> None:
    worker, fake, store = make_worker(tmp_path, ["sh", "-c", "exit 4"], [])
    worker.offer(1, [desired()])
    worker.step()
    lease = store.load().leases["bk_1"]
    assert lease.phase == "rejected"
    assert fake.acks[0][1]["state"] == "rejected"
    assert "exited 4" in str(fake.acks[0][1]["detail"])


def test_unsaveable_state_means_on_start_does_not_run(tmp_path: Path) -> None:
    worker, fake, store = make_worker(tmp_path, counting_hook(tmp_path, "start"), [])
    store.path = tmp_path / "missing-dir" / "state.json"  # every save now fails
    worker.offer(1, [desired()])
    worker.step()
    assert not (tmp_path / "start.log").exists()
    assert fake.acks == []
    assert worker.state_error is not None


def test_hook_never_sees_the_agents_secrets_or_systemd_sockets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "env.json"
    monkeypatch.setenv("AITBC_AGENT_COORDINATOR__API_KEY", "sekrit")
    monkeypatch.setenv("aitbc_agent_gpu__backend", "simulated")  # env keys are case-blind
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    monkeypatch.setenv("HOOK_TEST_KEPT", "yes")
    code = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    result = run_hook([sys.executable, "-c", code], {"AITBC_LEASE_ID": "bk_1"}, timeout_s=30)
    assert result.ok, result.describe()
    env = json.loads(out.read_text())
    for name in (
        "AITBC_AGENT_COORDINATOR__API_KEY",
        "aitbc_agent_gpu__backend",
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
    ):
        assert name not in env
    assert "sekrit" not in env.values()
    assert env["HOOK_TEST_KEPT"] == "yes"  # the rest of the environment is passed on
    assert env["AITBC_LEASE_ID"] == "bk_1"
    assert "PATH" in env


def test_hook_output_is_logged_line_by_line_against_its_lease() -> None:
    from agent.lease.hooks import MAX_LOGGED_LINES, run_lease_hook

    script = (
        "echo 'started {\"not\": json'; echo oops >&2; "
        f"i=0; while [ $i -lt {MAX_LOGGED_LINES + 5} ]; do echo line$i; i=$((i+1)); done"
    )
    with structlog.testing.capture_logs() as logs:
        result = run_lease_hook(["sh", "-c", script], {}, timeout_s=30, booking_id="bk_1")
    assert result.ok
    lines = [e for e in logs if e["event"] == "hook_output"]
    assert {"booking_id": "bk_1", "stream": "stderr", "line": "oops"}.items() <= next(
        e for e in lines if e["stream"] == "stderr"
    ).items()
    stdout = [e["line"] for e in lines if e["stream"] == "stdout"]
    assert stdout[0] == 'started {"not": json'  # a value in an event, never raw text
    assert len(stdout) == MAX_LOGGED_LINES + 1  # capped, with a note saying so
    assert "not logged" in stdout[-1]
    (finished,) = [e for e in logs if e["event"] == "hook_finished"]
    assert finished["booking_id"] == "bk_1"
    assert finished["duration_s"] >= 0
