"""The agent's state file: miner id, uuid → gpu_id, and every lease it holds, with its phase.

Written atomically — a temp file in the same directory, fsync, rename over the old file, fsync
of the directory — so after a crash, `kill -9` or power loss the file is either the old or the
new version, never a mix. A full or read-only disk raises `StateError` and leaves the previous
file untouched. The lease phases are what make hooks run at most once:

    starting  recorded BEFORE on_start runs     (after a crash: resumed, on_start not rerun)
    started   on_start finished                 (ack "started" owed until accepted)
    stopping  recorded BEFORE on_end runs       (after a crash: on_end not rerun)
    stopped   on_end finished                   (ack "stopped" owed; then a tombstone)
    rejected  GPU missing/unhealthy or on_start failed (ack "rejected" owed; then a tombstone)
"""

from __future__ import annotations

import contextlib
import errno
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import StateError
from agent.link.wire import LeaseAckState

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
TOMBSTONE_KEEP = timedelta(days=1)

LeasePhase = Literal["starting", "started", "stopping", "stopped", "rejected"]
ACTIVE_PHASES: frozenset[str] = frozenset({"starting", "started"})
ENDING_PHASES: frozenset[str] = frozenset({"stopping", "stopped", "rejected"})


def utc_now() -> datetime:
    """Timezone-aware UTC now."""
    return datetime.now(UTC)


class HeldLease(BaseModel):
    """A lease this host holds (or held: stopped/rejected leases stay a day as tombstones)."""

    model_config = ConfigDict(extra="ignore")

    booking_id: str
    gpu_uuid: str
    gpu_id: str | None = None
    gpu_index: int | None = None
    client_id: str | None = None
    start_time: datetime | None = None
    end_time: datetime
    generation: int
    phase: LeasePhase
    detail: str | None = None
    ack_state: LeaseAckState | None = None  # the ack owed to the coordinator, if any
    ack_generation: int | None = None
    acked: bool = False  # the owed ack was accepted (or dropped as stale)
    updated_at: datetime = Field(default_factory=utc_now)

    @property
    def active(self) -> bool:
        """True while the tenant holds the GPU (starting or started)."""
        return self.phase in ACTIVE_PHASES

    @property
    def ack_pending(self) -> bool:
        """True while an ack is owed and not yet accepted."""
        return self.ack_state is not None and not self.acked

    def owe_ack(self, state: LeaseAckState, generation: int) -> None:
        """Record that `state` must be acked at `generation` (replacing an older owed ack)."""
        self.ack_state = state
        self.ack_generation = generation
        self.acked = False


class AgentState(BaseModel):
    """Everything the agent must not forget across restarts."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    miner_id: str | None = None
    coordinator_url: str | None = None
    gpu_ids: dict[str, str] = Field(default_factory=dict)  # uuid -> gpu_id
    leases: dict[str, HeldLease] = Field(default_factory=dict)  # booking_id -> lease
    updated_at: datetime | None = None

    def active_leases(self) -> list[HeldLease]:
        """Leases in `starting` or `started`."""
        return [lease for lease in self.leases.values() if lease.active]

    def prune(self, now: datetime) -> list[str]:
        """Drop settled tombstones older than a day past their end; returns the dropped ids."""
        dropped = [
            booking_id
            for booking_id, lease in self.leases.items()
            if lease.phase in ("stopped", "rejected")
            and not lease.ack_pending
            and max(lease.end_time, lease.updated_at) + TOMBSTONE_KEEP < now
        ]
        for booking_id in dropped:
            del self.leases[booking_id]
        return dropped


def _describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or type(exc).__name__


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` atomically (temp file, fsync, rename, directory fsync).

    Raises:
        StateError: the directory is missing, full, read-only or not writable; the old file
            is left as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateError(f"cannot write {str(path)!r}: {_describe_os_error(exc)}") from exc


class StateStore:
    """Loads and saves the state file in the agent's state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE

    def ensure_dir(self) -> None:
        """Create the state directory (0700) if needed; `StateError` when impossible."""
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create state directory {str(self.state_dir)!r}: {_describe_os_error(exc)}"
            ) from exc

    def load(self) -> AgentState:
        """The saved state, or a fresh one when there is no file yet.

        Raises:
            StateError: the file cannot be read, is not valid, or has a newer schema. The agent
                refuses to start rather than forget leases it may hold.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AgentState()
        except OSError as exc:
            raise StateError(
                f"cannot read state file {str(self.path)!r}: {_describe_os_error(exc)}"
            ) from exc
        try:
            state = AgentState.model_validate_json(raw)
        except ValidationError as exc:
            raise StateError(
                f"state file {str(self.path)!r} is damaged ({exc.error_count()} problems); "
                "move it aside to start afresh"
            ) from exc
        if state.schema_version > SCHEMA_VERSION:
            raise StateError(
                f"state file {str(self.path)!r} has schema {state.schema_version}, newer than "
                f"this agent's {SCHEMA_VERSION}; upgrade the agent"
            )
        return state

    def save(self, state: AgentState) -> None:
        """Write `state` atomically and durably; `StateError` on failure (old file kept)."""
        state.schema_version = SCHEMA_VERSION
        state.updated_at = utc_now()
        write_atomic(self.path, state.model_dump_json(indent=1).encode("utf-8"))
