"""Operator hooks: `[leases] on_start` / `on_end` argv, run with the lease in the environment.

A hook gets `AITBC_LEASE_ID`, `AITBC_GPU_UUID`, `AITBC_GPU_INDEX`, `AITBC_CLIENT_ID` and
`AITBC_LEASE_END` (RFC 3339 UTC) on top of the agent's environment, less what is the agent's
alone (`hook_environment`): its own `AITBC_AGENT_*` settings (the API key may be one), the
systemd credentials directory, and the systemd notify/watchdog variables (a hook must not talk
to systemd as the agent). Each line it writes on stdout or stderr is handed to `on_output` (the
worker logs it as a `hook_output` event, so `journalctl -o cat | jq` keeps working), never to the
agent's stdout. A hook that overruns `hook_timeout_s` is killed with its whole process group.
The at-most-once guarantee lives in the caller: it records `starting` / `stopping` in the state
file before calling `run_lease_hook`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Literal, get_args

from agent.log import get_logger

log = get_logger("agent.leases")

HookName = Literal["on_start", "on_end"]  # the `[leases]` setting that names the hook
HOOK_NAMES: tuple[HookName, ...] = get_args(HookName)

_AGENT_ONLY_PREFIXES = ("AITBC_AGENT_", "WATCHDOG_")
_AGENT_ONLY_NAMES = frozenset({"CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"})


@dataclass(frozen=True, slots=True)
class HookResult:
    """How a hook ended."""

    exit_code: int | None  # None when it could not be started or was killed on timeout
    duration_s: float
    timed_out: bool = False
    error: str | None = None  # why it could not be started

    @property
    def ok(self) -> bool:
        """True when the hook ran and exited 0 (or there was no hook)."""
        return self.exit_code == 0

    def describe(self) -> str:
        """A short sentence for logs and ack details."""
        if self.error is not None:
            return f"could not run: {self.error}"
        if self.timed_out:
            return f"timed out after {self.duration_s:.1f}s"
        return f"exited {self.exit_code}"


def rfc3339(moment: datetime) -> str:
    """`2026-11-26T03:56:14.838070Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_env(
    *,
    booking_id: str,
    gpu_uuid: str,
    gpu_index: int | None,
    client_id: str | None,
    end_time: datetime,
) -> dict[str, str]:
    """The `AITBC_*` variables a hook sees."""
    return {
        "AITBC_LEASE_ID": booking_id,
        "AITBC_GPU_UUID": gpu_uuid,
        "AITBC_GPU_INDEX": "" if gpu_index is None else str(gpu_index),
        "AITBC_CLIENT_ID": client_id or "",
        "AITBC_LEASE_END": rfc3339(end_time),
    }


def hook_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` without the variables that belong to the agent alone (secrets, systemd's)."""
    return {
        name: value
        for name, value in base.items()
        if name not in _AGENT_ONLY_NAMES and not name.upper().startswith(_AGENT_ONLY_PREFIXES)
    }


OutputFn = Callable[[str, str], None]  # (stream: "stdout" | "stderr", line)
MAX_LOGGED_LINES = 1000  # per stream and run: a chatty hook must not flood the journal
MAX_LINE_CHARS = 4096


def _to_stderr(stream: str, line: str) -> None:
    sys.stderr.write(f"{line}\n")


def _pump(pipe: IO[bytes], stream: str, on_output: OutputFn) -> None:
    """Hand `pipe`'s lines to `on_output` until it closes (on a reader thread)."""
    with pipe:
        for count, raw in enumerate(iter(pipe.readline, b""), 1):
            if count <= MAX_LOGGED_LINES:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                on_output(stream, line[:MAX_LINE_CHARS])
            elif count == MAX_LOGGED_LINES + 1:
                on_output(stream, f"(more than {MAX_LOGGED_LINES} lines: the rest not logged)")


def run_hook(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout_s: float,
    base_env: Mapping[str, str] | None = None,
    on_output: OutputFn = _to_stderr,
) -> HookResult:
    """Run `argv` to completion (or `timeout_s`); an empty argv is a successful no-op."""
    started = time.monotonic()
    if not argv:
        return HookResult(exit_code=0, duration_s=0.0)
    full_env = {**hook_environment(os.environ if base_env is None else base_env), **env}
    try:
        proc = subprocess.Popen(  # noqa: S603 - the operator's own configured command
            list(argv),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # line by line to on_output, never the agent's stdout
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout kills its children
            close_fds=True,
        )
    except OSError as exc:
        return HookResult(
            exit_code=None,
            duration_s=time.monotonic() - started,
            error=f"{argv[0]}: {exc.strerror or exc}",
        )
    readers = [
        threading.Thread(target=_pump, args=(pipe, name, on_output), daemon=True)
        for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        if pipe is not None
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _finish(readers)
        return HookResult(exit_code=None, duration_s=time.monotonic() - started, timed_out=True)
    _finish(readers)
    return HookResult(exit_code=code, duration_s=time.monotonic() - started)


def _finish(readers: Sequence[threading.Thread]) -> None:
    # The last lines, briefly: a child the hook left running (`cmd &`) may keep a pipe open for
    # ever, and the hook counts as done when its own process is.
    for reader in readers:
        reader.join(timeout=1.0)


def run_lease_hook(
    argv: Sequence[str], env: Mapping[str, str], *, timeout_s: float, booking_id: str
) -> HookResult:
    """`run_hook` for one lease, its output and its end logged against the booking: one
    `hook_output` event per line, then `hook_finished` with the result and duration."""

    def output(stream: str, line: str) -> None:
        log.info("hook_output", hook=argv[0], booking_id=booking_id, stream=stream, line=line)

    result = run_hook(argv, env, timeout_s=timeout_s, on_output=output)
    level = log.info if result.ok else log.error
    level(
        "hook_finished",
        hook=argv[0],
        booking_id=booking_id,
        result=result.describe(),
        duration_s=round(result.duration_s, 3),
    )
    return result
