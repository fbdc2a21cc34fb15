"""NvmlBackend: real GPUs through `pynvml` — the only module that imports it.

Every NVML call goes through one choke point (`_NvmlSession.query`), which turns a field the
card or library cannot report (not supported, no permission, function not found, the bindings'
library-mismatch error) into `None`, walks versioned fallbacks (`_v3` → `_v2` process lists,
`GetTemperatureV` → `GetTemperature`, memory info v2 → v1, clock-event → throttle reasons) and
remembers which one worked, and turns `GPU_IS_LOST` into a lost GPU. Each GPU is read on its own
worker thread under a deadline, so a driver call that never returns marks that GPU
`driver_unresponsive` instead of freezing the agent, and one broken GPU never hides the others.

At import this module checks that `pynvml` is the official binding from the `nvidia-ml-py`
distribution (the deprecated `pynvml` distribution ships an incompatible module of the same
name); `open()` refuses to start with any other.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pynvml

from agent.errors import (
    GpuAccessError,
    NvmlBindingError,
    NvmlDriverMismatchError,
    NvmlLibraryNotFoundError,
)
from agent.gpu.backend import (
    GpuInfo,
    GpuSample,
    MigDeviceInfo,
    SystemInfo,
    throttle_reason_names,
)
from agent.gpu.deadline import DeadlineError as NvmlDeadlineError
from agent.gpu.deadline import DeadlineWorker as _DeadlineWorker
from agent.gpu.deadline import Job
from agent.gpu.health import HealthPolicy, HealthTracker, Observation

log = logging.getLogger(__name__)

NVML_LIBRARY = "libnvidia-ml.so.1"
DEFAULT_DEADLINE_S = 5.0
DEFAULT_CLOSE_TIMEOUT_S = 2.0
MIB = 1024 * 1024
_MAX_EVENTS_PER_SAMPLE = 1024

# Errors that mean "this entry point does not exist here": the next fallback is tried. The
# bindings' library-mismatch error (raised by the unversioned process-list wrappers) came with
# nvidia-ml-py 12.550; older bindings allowed by pyproject lack the class, so it is optional.
_LIBRARY_MISMATCH: type[BaseException] | None = getattr(pynvml, "NVMLLibraryMismatchError", None)
_MISSING_SYMBOL: tuple[type[BaseException], ...] = (
    pynvml.NVMLError_FunctionNotFound,
    *(() if _LIBRARY_MISMATCH is None else (_LIBRARY_MISMATCH,)),
)


def _check_binding() -> str | None:
    """Why the imported `pynvml` is not the official nvidia-ml-py binding (None when it is)."""
    try:
        dist = importlib.metadata.distribution("nvidia-ml-py")
    except importlib.metadata.PackageNotFoundError:
        return (
            "the importable pynvml module does not come from the nvidia-ml-py distribution; "
            "run `pip install nvidia-ml-py` (and uninstall the deprecated `pynvml` package)"
        )
    module_file = Path(getattr(pynvml, "__file__", "") or "").resolve()
    official = Path(str(dist.locate_file("pynvml.py"))).resolve()
    if module_file != official:
        return (
            f"pynvml is loaded from {module_file}, not from nvidia-ml-py's {official}; "
            "another distribution (the deprecated `pynvml`?) shadows the official binding"
        )
    for name in ("nvmlInitWithFlags", "_nvmlGetFunctionPointer", "NVMLError_GpuIsLost"):
        if not hasattr(pynvml, name):
            return f"pynvml from nvidia-ml-py {dist.version} lacks {name}; reinstall it"
    return None


BINDING_PROBLEM: str | None = _check_binding()


class _GpuLostError(Exception):
    """NVML answered GPU_IS_LOST; aborts the rest of one GPU's reading."""


def _mib(value: int | None) -> int | None:
    return None if value is None else int(value) // MIB


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def _cuda_version(value: int | None) -> str | None:
    if value is None or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def _blank_info(index: int) -> GpuInfo:
    return GpuInfo(index, None, None, None, None, None, None, None, None, None, None)


_MIG_PROFILE = re.compile(r"\bMIG\s+(\S+)\s*$")

# Entry points whose pynvml wrapper takes different arguments from the name we look up.
_ADAPTERS: dict[str, Callable[..., Any]] = {
    "nvmlDeviceGetMemoryInfo_v2": lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h, pynvml.nvmlMemory_v2),
}


class _NvmlSession:
    """The one choke point for NVML calls: errors → None, versioned fallbacks, lost GPUs."""

    def __init__(self, nv: Any) -> None:
        self.nv = nv
        self._chosen: dict[tuple[str, ...], int] = {}
        self._noted: set[tuple[str, str]] = set()

    def call(self, name: str, *args: Any) -> Any:
        """Call one pynvml wrapper by name; NVML errors propagate.

        A wrapper the installed binding does not have (an older nvidia-ml-py than the driver)
        raises FunctionNotFound, exactly like a symbol the library lacks.
        """
        adapter = _ADAPTERS.get(name)
        if adapter is not None:
            return adapter(self.nv, *args)
        fn = getattr(self.nv, name, None)
        if fn is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return fn(*args)

    def query(self, names: str | tuple[str, ...], *args: Any) -> Any:
        """The first of `names` (newest entry point first) that exists, called with `args`.

        Returns None when the value cannot be read (not supported, no permission, every entry
        point missing, any other NVML error); raises `_GpuLostError` on GPU_IS_LOST. Which entry
        point exists is remembered, so a missing `_v3` is looked up once, not on every sample.
        """
        chain = (names,) if isinstance(names, str) else names
        start = self._chosen.get(chain, 0)
        for i in range(start, len(chain)):
            try:
                value = self.call(chain[i], *args)
            except pynvml.NVMLError_GpuIsLost as exc:
                raise _GpuLostError(chain[i]) from exc
            except _MISSING_SYMBOL:
                self._note(chain[i], "function not found")
                self._chosen[chain] = i + 1
                continue
            except pynvml.NVMLError as exc:
                self._note(chain[i], str(exc))
                return None
            return value
        return None

    def _note(self, name: str, why: str) -> None:
        if (name, why) not in self._noted and len(self._noted) < 512:
            self._noted.add((name, why))
            log.debug("nvml %s unavailable: %s", name, why)


@dataclass(slots=True)
class _Gpu:
    index: int
    info: GpuInfo
    handle: Any | None
    worker: _DeadlineWorker


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
        self._s = _NvmlSession(self._nv)
        self._system = _DeadlineWorker("nvml-system")
        self._gpus: list[_Gpu] = []
        self._info: SystemInfo | None = None
        self._events: Any = None
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
            self._info = self._system.run(self._read_system, self._deadline_s)
            count = self._system.run(self._device_count, self._deadline_s)
            self._gpus = self._enumerate(count)
            self._events = self._register_events()
        except NvmlDeadlineError as exc:
            raise GpuAccessError(
                f"NVML did not answer within {self._deadline_s:g} s: driver unresponsive"
            ) from exc
        return self._info

    def _enumerate(self, count: int) -> list[_Gpu]:
        gpus = []
        for index in range(count):
            gpu = _Gpu(index, _blank_info(index), None, _DeadlineWorker(f"nvml-gpu{index}"))
            try:
                gpu.handle, gpu.info = gpu.worker.run(
                    functools.partial(self._fingerprint, index), self._deadline_s
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
            events, self._events = self._events, None

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
            xids = self._drain_events()
            now = datetime.now(UTC)
            deadline = time.monotonic() + self._deadline_s
            jobs: list[tuple[_Gpu, Job | None]] = []
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
                        raw = _DeadlineWorker.wait(job, deadline - time.monotonic())
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

    def _read_system(self) -> SystemInfo:
        q = self._s.query
        cuda = q(("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"))
        return SystemInfo(
            driver_version=_text(q("nvmlSystemGetDriverVersion")),
            cuda_driver_version=_cuda_version(cuda),
            nvml_version=_text(q("nvmlSystemGetNVMLVersion")),
        )

    def _device_count(self) -> int:
        try:
            return int(self._s.call("nvmlDeviceGetCount"))
        except pynvml.NVMLError as exc:
            raise GpuAccessError(f"nvmlDeviceGetCount failed: {exc}") from exc

    def _fingerprint(self, index: int) -> tuple[Any | None, GpuInfo]:
        """(handle, fingerprint) of GPU `index`; a lost or unreadable GPU keeps its index."""
        try:
            handle = self._s.call("nvmlDeviceGetHandleByIndex", index)
            return handle, self._read_info(index, handle)
        except _GpuLostError:
            return None, _blank_info(index)
        except pynvml.NVMLError as exc:  # GPU_IS_LOST included: no handle at all
            log.warning("nvml GPU %d has no handle: %s", index, exc)
            return None, _blank_info(index)

    def _read_info(self, index: int, h: Any) -> GpuInfo:
        q = self._s.query
        memory = q(("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"), h)
        cc = q("nvmlDeviceGetCudaComputeCapability", h)
        pci = q("nvmlDeviceGetPciInfo_v3", h)
        limit_mw = q("nvmlDeviceGetEnforcedPowerLimit", h)
        persistence = q("nvmlDeviceGetPersistenceMode", h)
        mig = q("nvmlDeviceGetMigMode", h)
        mig_enabled = None if mig is None else mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE
        return GpuInfo(
            index=index,
            uuid=_text(q("nvmlDeviceGetUUID", h)),
            name=_text(q("nvmlDeviceGetName", h)),
            memory_total_mib=None if memory is None else _mib(memory.total),
            compute_capability=None if cc is None else f"{cc[0]}.{cc[1]}",
            pci_bus_id=None if pci is None else _text(pci.busId),
            power_limit_w=None if limit_mw is None else limit_mw / 1000,
            max_sm_clock_mhz=q("nvmlDeviceGetMaxClockInfo", h, pynvml.NVML_CLOCK_SM),
            max_memory_clock_mhz=q("nvmlDeviceGetMaxClockInfo", h, pynvml.NVML_CLOCK_MEM),
            persistence_mode=None if persistence is None else bool(persistence),
            mig_mode=mig_enabled,
            mig_devices=self._read_mig(h) if mig_enabled else (),
        )

    def _read_mig(self, h: Any) -> tuple[MigDeviceInfo, ...]:
        q = self._s.query
        devices = []
        for i in range(q("nvmlDeviceGetMaxMigDeviceCount", h) or 0):
            try:
                m = self._s.call("nvmlDeviceGetMigDeviceHandleByIndex", h, i)
            except pynvml.NVMLError_GpuIsLost as exc:
                raise _GpuLostError("nvmlDeviceGetMigDeviceHandleByIndex") from exc
            except pynvml.NVMLError:
                continue  # NOT_FOUND: no MIG device in this slot
            name = _text(q("nvmlDeviceGetName", m))
            memory = q("nvmlDeviceGetMemoryInfo", m)
            profile = _MIG_PROFILE.search(name or "")
            devices.append(
                MigDeviceInfo(
                    index=i,
                    uuid=_text(q("nvmlDeviceGetUUID", m)),
                    name=name,
                    profile=profile.group(1) if profile else None,
                    memory_total_mib=None if memory is None else _mib(memory.total),
                    gpu_instance_id=q("nvmlDeviceGetGpuInstanceId", m),
                    compute_instance_id=q("nvmlDeviceGetComputeInstanceId", m),
                )
            )
        return tuple(devices)

    def _read_gpu(self, gpu: _Gpu, now: datetime) -> GpuSample:
        """One GPU's reading (on its worker). A GPU lost midway keeps what was read before."""
        values: dict[str, Any] = {}
        if gpu.handle is None:  # lost earlier (or at open): look for it again by index
            handle, info = self._fingerprint(gpu.index)
            if handle is None:
                return GpuSample(gpu.index, gpu.info.uuid, now, lost=True)
            if gpu.info.uuid is not None and info.uuid != gpu.info.uuid:
                log.warning(
                    "nvml index %d now holds %s, not %s", gpu.index, info.uuid, gpu.info.uuid
                )
                return GpuSample(gpu.index, gpu.info.uuid, now, lost=True)
            gpu.handle, gpu.info = handle, info
        try:
            self._read_metrics(gpu.handle, values)
        except _GpuLostError:
            gpu.handle = None  # handles of a lost GPU are dead; re-acquired next sample
            return GpuSample(gpu.index, gpu.info.uuid, now, lost=True, **values)
        return GpuSample(gpu.index, gpu.info.uuid, now, **values)

    def _read_metrics(self, h: Any, out: dict[str, Any]) -> None:
        """Fill `out` field by field, so a GPU lost midway keeps the fields read before it."""
        q = self._s.query
        util = q("nvmlDeviceGetUtilizationRates", h)
        out["utilization_pct"] = None if util is None else int(util.gpu)
        out["memory_utilization_pct"] = None if util is None else int(util.memory)
        memory = q(("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"), h)
        out["memory_used_mib"] = None if memory is None else _mib(memory.used)
        out["temperature_c"] = q(
            ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"),
            h,
            pynvml.NVML_TEMPERATURE_GPU,
        )
        power_mw = q("nvmlDeviceGetPowerUsage", h)
        out["power_draw_w"] = None if power_mw is None else power_mw / 1000
        out["sm_clock_mhz"] = q("nvmlDeviceGetClockInfo", h, pynvml.NVML_CLOCK_SM)
        out["fan_pct"] = q("nvmlDeviceGetFanSpeed", h)
        pstate = q("nvmlDeviceGetPerformanceState", h)
        out["pstate"] = None if pstate is None or pstate >= pynvml.NVML_PSTATE_UNKNOWN else pstate
        out["ecc_uncorrected_volatile"] = q(
            "nvmlDeviceGetTotalEccErrors",
            h,
            pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            pynvml.NVML_VOLATILE_ECC,
        )
        reasons = q(
            ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
            h,
        )
        out["throttle_reasons"] = None if reasons is None else throttle_reason_names(reasons)
        procs = q(
            ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses_v2"),
            h,
        )
        out["compute_process_count"] = None if procs is None else len(procs)

    # -- Xid events --------------------------------------------------------------------------

    def _register_events(self) -> Any:
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
        jobs: list[tuple[_Gpu, Job]] = []
        for gpu in gpus:
            register = functools.partial(self._register_gpu_events, gpu.handle, events)
            try:
                jobs.append((gpu, gpu.worker.submit(register)))
            except NvmlDeadlineError:  # still stuck in its fingerprint
                log.warning("nvml GPU %d is unresponsive; no Xid events for it", gpu.index)
        registered = pending = 0
        for gpu, job in jobs:
            try:
                registered += _DeadlineWorker.wait(job, deadline - time.monotonic())
            except NvmlDeadlineError:
                pending += 1
                log.warning(
                    "nvml Xid event registration of GPU %d overran its deadline; "
                    "no Xid events for it",
                    gpu.index,
                )
            except (_GpuLostError, pynvml.NVMLError) as exc:
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

    def _drain_events(self) -> dict[int, tuple[int, ...]]:
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
        for _ in range(_MAX_EVENTS_PER_SAMPLE):
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
                uuid = _text(self._s.call("nvmlDeviceGetUUID", data.device))
            except pynvml.NVMLError:
                uuid = None
            pairs.append((uuid, int(data.eventData)))
        return pairs
