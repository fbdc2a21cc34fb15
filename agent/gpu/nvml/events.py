"""Xid events: one NVML event set for critical Xid errors, registered per GPU and drained at
each sample (never blocking long), so a GPU's health sees the Xids since the last sample."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import pynvml

from agent.gpu.deadline import DeadlineError as NvmlDeadlineError
from agent.gpu.deadline import DeadlineWorker, Job
from agent.gpu.nvml.session import (
    MAX_EVENTS_PER_SAMPLE,
    GpuLostError,
    NvmlGpu,
    NvmlSession,
    log,
    text,
)


class XidEvents:
    """The event set of one open backend; `handle` is None when no GPU supports Xid events."""

    def __init__(self, session: NvmlSession, system: DeadlineWorker, deadline_s: float) -> None:
        self._s = session
        self._system = system
        self._deadline_s = deadline_s
        self._gpus: Sequence[NvmlGpu] = ()
        self._events: Any = None

    def register(self, gpus: Sequence[NvmlGpu]) -> None:
        """Create the set and register `gpus` (on the system and GPU workers)."""
        self._gpus = gpus
        self._events = self._register()

    def take(self) -> Any:
        """Hand the set over for freeing at shutdown (None when there is none); drains stop."""
        events, self._events = self._events, None
        return events

    def _register(self) -> Any:
        """An event set with every GPU that supports Xid events registered; None if none.

        Each GPU registers on its own worker, all at once under one deadline, so a GPU whose
        driver hangs or fails here only loses its own Xid events: its worker stays busy, so its
        samples read `driver_unresponsive` until the hung call returns, and the others go on.
        """
        gpus = [g for g in self._gpus if g.handle is not None]
        if not gpus:
            return None
        events = self._system.run(lambda: self._s.query("nvmlEventSetCreate"), self._deadline_s)
        if events is None:
            return None
        deadline = time.monotonic() + self._deadline_s
        jobs: list[tuple[NvmlGpu, Job]] = []
        for gpu in gpus:
            register = functools.partial(self._register_gpu_events, gpu.handle, events)
            try:
                jobs.append((gpu, gpu.worker.submit(register)))
            except NvmlDeadlineError:  # still stuck in its fingerprint
                log.warning("nvml GPU %d is unresponsive; no Xid events for it", gpu.index)
        registered = pending = 0
        for gpu, job in jobs:
            try:
                registered += DeadlineWorker.wait(job, deadline - time.monotonic())
            except NvmlDeadlineError:
                pending += 1
                log.warning(
                    "nvml Xid event registration of GPU %d overran its deadline; "
                    "no Xid events for it",
                    gpu.index,
                )
            except (GpuLostError, pynvml.NVMLError) as exc:
                log.warning("nvml Xid events not registered for GPU %d: %s", gpu.index, exc)
        if registered or pending:  # a hung registration may still use the set: keep it
            return events
        self._system.run(lambda: self._s.query("nvmlEventSetFree", events), self._deadline_s)
        log.info("nvml Xid events are not supported on this host")
        return None

    def _register_gpu_events(self, h: Any, events: Any) -> bool:
        """Register one GPU for Xid events (on its worker); False when it does not support them."""
        xid_mask = pynvml.nvmlEventTypeXidCriticalError
        supported = self._s.query("nvmlDeviceGetSupportedEventTypes", h)
        if not (supported and supported & xid_mask):
            return False
        self._s.call("nvmlDeviceRegisterEvents", h, xid_mask, events)
        return True

    def drain(self) -> dict[int, tuple[int, ...]]:
        """Xid codes per GPU index received since the previous call (never blocks long)."""
        if self._events is None:
            return {}
        try:
            pairs = self._system.run(self._read_events, self._deadline_s)
        except NvmlDeadlineError:
            log.warning("nvml event wait overran its deadline")
            return {}
        by_uuid = {g.info.uuid: g.index for g in self._gpus if g.info.uuid is not None}
        out: dict[int, list[int]] = {}
        for uuid, xid in pairs:
            index = by_uuid.get(uuid) if uuid is not None else None
            if index is None:
                log.warning("nvml Xid %d from an unknown device %s", xid, uuid)
                continue
            out.setdefault(index, []).append(xid)
        return {k: tuple(v) for k, v in out.items()}

    def _read_events(self) -> list[tuple[str | None, int]]:
        pairs: list[tuple[str | None, int]] = []
        for _ in range(MAX_EVENTS_PER_SAMPLE):
            try:
                data = self._s.call("nvmlEventSetWait_v2", self._events, 0)
            except pynvml.NVMLError_Timeout:
                break  # no more events waiting
            except pynvml.NVMLError as exc:
                log.debug("nvmlEventSetWait_v2 failed: %s", exc)
                break
            if not data.eventType & pynvml.nvmlEventTypeXidCriticalError:
                continue
            try:
                uuid = text(self._s.call("nvmlDeviceGetUUID", data.device))
            except pynvml.NVMLError:
                uuid = None
            pairs.append((uuid, int(data.eventData)))
        return pairs
