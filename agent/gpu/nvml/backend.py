"""NvmlBackend: real GPUs through NVML, one deadline-bound worker thread per GPU.

Every NVML call goes through one choke point (`NvmlSession.query`, in `session.py`), which turns a
field the card or library cannot report (not supported, no permission, function not found, the
bindings' library-mismatch error) into `None`, walks versioned fallbacks (`_v3` → `_v2` process
lists, `GetTemperatureV` → `GetTemperature`, memory info v2 → v1, clock-event → throttle reasons)
and remembers which one worked, and turns `GPU_IS_LOST` into a lost GPU. Each GPU is read on its
own worker thread under a deadline, so a driver call that never returns marks that GPU
`driver_unresponsive` instead of freezing the agent, and one broken GPU never hides the others.
What is read lives beside this module: `facts.py` (fingerprints), `samples.py` (live readings),
`events.py` (Xid events).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pynvml

from agent.gpu.backend import GpuInfo, GpuSample, SystemInfo
from agent.gpu.deadline import DeadlineError as NvmlDeadlineError
from agent.gpu.deadline import DeadlineWorker, Job
from agent.gpu.errors import (
    GpuAccessError,
    NvmlBindingError,
    NvmlDriverMismatchError,
    NvmlLibraryNotFoundError,
)
from agent.gpu.health import HealthPolicy, HealthTracker, Observation
from agent.gpu.nvml.events import XidEvents
from agent.gpu.nvml.facts import fingerprint, read_system
from agent.gpu.nvml.samples import read_metrics
from agent.gpu.nvml.session import (
    BINDING_PROBLEM,
    DEFAULT_CLOSE_TIMEOUT_S,
    DEFAULT_DEADLINE_S,
    NVML_LIBRARY,
    GpuLostError,
    NvmlGpu,
    NvmlSession,
    blank_info,
    log,
)


class NvmlBackend:
    """A `GpuBackend` over NVML.

    Args:
        exclude: GPU uuids or NVML indexes never offered (also MIG uuids).
        policy: health classification knobs.
        deadline_s: how long one GPU's reading (or one system call) may take.
        nvml: the pynvml-compatible module to call (tests pass a fake; default the real one).
    """

    def __init__(
        self,
        *,
        exclude: Sequence[str | int] = (),
        policy: HealthPolicy | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        nvml: Any = None,
    ) -> None:
        self._exclude = {str(x) for x in exclude}
        self._tracker = HealthTracker(policy)
        self._deadline_s = deadline_s
        self._nv: Any = pynvml if nvml is None else nvml
        self._check_binding = nvml is None
        self._s = NvmlSession(self._nv)
        self._system = DeadlineWorker("nvml-system")
        self._gpus: list[NvmlGpu] = []
        self._info: SystemInfo | None = None
        self._events = XidEvents(self._s, self._system, deadline_s)
        self._initialised = False
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return "nvml"

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> SystemInfo:
        with self._lock:
            try:
                return self._open()
            except GpuAccessError:
                self._shutdown()  # a failed open must not leave NVML initialised
                raise

    def _open(self) -> SystemInfo:
        if self._check_binding and BINDING_PROBLEM is not None:
            raise NvmlBindingError(BINDING_PROBLEM)
        try:
            self._system.run(lambda: self._s.call("nvmlInit"), self._deadline_s)
        except NvmlDeadlineError as exc:
            raise GpuAccessError(
                f"nvmlInit did not return within {self._deadline_s:g} s: driver unresponsive"
            ) from exc
        except pynvml.NVMLError_LibraryNotFound as exc:
            raise NvmlLibraryNotFoundError(
                f"the NVML library {NVML_LIBRARY} was not found: install the NVIDIA driver "
                '(or set [gpu] backend = "simulated" on a host without GPUs)'
            ) from exc
        except pynvml.NVMLError_LibRmVersionMismatch as exc:
            raise NvmlDriverMismatchError(
                "NVIDIA driver/library version mismatch: the loaded kernel module and "
                f"{NVML_LIBRARY} come from different driver versions (usually a driver upgrade "
                "without a reboot); reboot or reload the nvidia kernel module"
            ) from exc
        except pynvml.NVMLError_DriverNotLoaded as exc:
            raise GpuAccessError("the NVIDIA kernel driver is not loaded") from exc
        except pynvml.NVMLError_NoPermission as exc:
            raise GpuAccessError("no permission to open /dev/nvidia* (check its group)") from exc
        except pynvml.NVMLError as exc:
            raise GpuAccessError(f"nvmlInit failed: {exc}") from exc
        self._initialised = True
        try:
            self._info = self._system.run(functools.partial(read_system, self._s), self._deadline_s)
            count = self._system.run(self._device_count, self._deadline_s)
            self._gpus = self._enumerate(count)
            self._events.register(self._gpus)
        except NvmlDeadlineError as exc:
            raise GpuAccessError(
                f"NVML did not answer within {self._deadline_s:g} s: driver unresponsive"
            ) from exc
        return self._info

    def _enumerate(self, count: int) -> list[NvmlGpu]:
        gpus = []
        for index in range(count):
            gpu = NvmlGpu(index, blank_info(index), None, DeadlineWorker(f"nvml-gpu{index}"))
            try:
                gpu.handle, gpu.info = gpu.worker.run(
                    functools.partial(fingerprint, self._s, index), self._deadline_s
                )
            except NvmlDeadlineError:
                log.warning("nvml fingerprint of GPU %d overran its deadline", index)
            if str(index) in self._exclude or (gpu.info.uuid or "\0") in self._exclude:
                gpu.worker.stop()
                continue
            migs = tuple(m for m in gpu.info.mig_devices if m.uuid not in self._exclude)
            gpu.info = replace(gpu.info, mig_devices=migs)
            gpus.append(gpu)
        return gpus

    def close(self, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Shut NVML down, taking at most about `timeout_s` (SIGTERM must end the agent in 5 s).

        A reading still in flight past that (it may hold the backend for its deadline and the
        event drain's), or a hung `nvmlShutdown`, is left behind: the process is exiting, and
        the driver cleans up after it.
        """
        end = time.monotonic() + timeout_s
        if not self._lock.acquire(timeout=max(timeout_s, 0.0)):
            log.warning(
                "nvml close skipped: a reading still held the backend after %g s", timeout_s
            )
            return
        try:
            self._shutdown(max(end - time.monotonic(), 0.0))
        finally:
            self._lock.release()

    def _shutdown(self, timeout_s: float | None = None) -> None:
        if self._initialised:
            self._initialised = False
            events = self._events.take()

            def shutdown() -> None:
                if events is not None:
                    self._s.query("nvmlEventSetFree", events)
                try:
                    self._s.call("nvmlShutdown")
                except pynvml.NVMLError as exc:
                    log.debug("nvmlShutdown failed: %s", exc)

            try:
                self._system.run(shutdown, self._deadline_s if timeout_s is None else timeout_s)
            except NvmlDeadlineError:
                log.warning("nvmlShutdown overran its deadline; leaving it")
        for gpu in self._gpus:
            gpu.worker.stop()
        self._system.stop()

    def __enter__(self) -> NvmlBackend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def system_info(self) -> SystemInfo:
        if self._info is None:
            raise GpuAccessError("the NVML backend is not open")
        return self._info

    def gpus(self) -> Sequence[GpuInfo]:
        return [g.info for g in self._gpus]

    # -- reading -----------------------------------------------------------------------------

    def sample(self) -> Sequence[GpuSample]:
        """Read every GPU in parallel, each under the deadline; never raises for one GPU."""
        with self._lock:
            xids = self._events.drain()
            now = datetime.now(UTC)
            deadline = time.monotonic() + self._deadline_s
            jobs: list[tuple[NvmlGpu, Job | None]] = []
            for gpu in self._gpus:
                try:
                    jobs.append(
                        (gpu, gpu.worker.submit(functools.partial(self._read_gpu, gpu, now)))
                    )
                except NvmlDeadlineError:
                    jobs.append((gpu, None))  # still stuck in an earlier call
            samples = []
            for gpu, job in jobs:
                raw = GpuSample(gpu.index, gpu.info.uuid, now, driver_unresponsive=True)
                if job is not None:
                    try:
                        raw = DeadlineWorker.wait(job, deadline - time.monotonic())
                    except NvmlDeadlineError:
                        log.warning("nvml reading of GPU %d overran its deadline", gpu.index)
                samples.append(self._with_health(raw, xids.get(gpu.index, ())))
            return samples

    def _with_health(self, raw: GpuSample, xids: tuple[int, ...]) -> GpuSample:
        obs = Observation(
            lost=raw.lost,
            driver_unresponsive=raw.driver_unresponsive,
            xid_events=xids,
            ecc_uncorrected_volatile=raw.ecc_uncorrected_volatile,
            throttle_reasons=raw.throttle_reasons,
        )
        health = self._tracker.update(raw.index, obs)
        return replace(raw, xid_events=xids, health=health)

    def _device_count(self) -> int:
        try:
            return int(self._s.call("nvmlDeviceGetCount"))
        except pynvml.NVMLError as exc:
            raise GpuAccessError(f"nvmlDeviceGetCount failed: {exc}") from exc

    def _read_gpu(self, gpu: NvmlGpu, now: datetime) -> GpuSample:
        """One GPU's reading (on its worker). A GPU lost midway keeps what was read before."""
        values: dict[str, Any] = {}
        if gpu.handle is None:  # lost earlier (or at open): look for it again by index
            handle, info = fingerprint(self._s, gpu.index)
            if handle is None:
                return GpuSample(gpu.index, gpu.info.uuid, now, lost=True)
            if gpu.info.uuid is not None and info.uuid != gpu.info.uuid:
                log.warning(
                    "nvml index %d now holds %s, not %s", gpu.index, info.uuid, gpu.info.uuid
                )
                return GpuSample(gpu.index, gpu.info.uuid, now, lost=True)
            gpu.handle, gpu.info = handle, info
        try:
            read_metrics(self._s, gpu.handle, values)
        except GpuLostError:
            gpu.handle = None  # handles of a lost GPU are dead; re-acquired next sample
            return GpuSample(gpu.index, gpu.info.uuid, now, lost=True, **values)
        return GpuSample(gpu.index, gpu.info.uuid, now, **values)
