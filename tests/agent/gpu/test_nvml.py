"""Tier 1: NvmlBackend over a fake pynvml module that raises the real pynvml errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pynvml
import pytest

from agent.gpu import GpuSample, HealthPolicy, HealthStatus
from agent.gpu.errors import (
    EX_UNAVAILABLE,
    GpuAccessError,
    NvmlDriverMismatchError,
    NvmlLibraryNotFoundError,
)
from agent.gpu.nvml import BINDING_PROBLEM, NvmlBackend
from tests.agent.gpu.fake_pynvml import FakeGpu, FakeMig, FakeNvml
from tests.support import REPO


def gpus(n: int = 3) -> list[FakeGpu]:
    return [
        FakeGpu(uuid=f"GPU-{i:04d}", pci_bus_id=f"00000000:{0x18 + i:02X}:00.0") for i in range(n)
    ]


def opened(fake: FakeNvml, **kwargs: object) -> NvmlBackend:
    backend = NvmlBackend(nvml=fake, **kwargs)  # type: ignore[arg-type]
    backend.open()
    return backend


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_official_binding_is_detected_in_this_environment() -> None:
    assert BINDING_PROBLEM is None


def test_every_field_is_read_and_converted_to_named_units() -> None:
    fake = FakeNvml(gpus(2))
    backend = opened(fake)
    info = backend.system_info()
    assert (info.driver_version, info.cuda_driver_version, info.nvml_version) == (
        "550.54.15",
        "12.4",
        "12.550.54.15",
    )
    g0 = backend.gpus()[0]
    assert g0.uuid == "GPU-0000"
    assert g0.memory_total_mib == 81559
    assert g0.compute_capability == "9.0"
    assert g0.pci_bus_id == "00000000:18:00.0"
    assert g0.power_limit_w == 700.0
    assert (g0.max_sm_clock_mhz, g0.max_memory_clock_mhz) == (1980, 2619)
    assert g0.persistence_mode is True
    assert g0.mig_mode is False
    s0 = backend.sample()[0]
    assert s0.utilization_pct == 40
    assert s0.memory_utilization_pct == 20
    assert s0.memory_used_mib == 1024
    assert s0.temperature_c == 45
    assert s0.power_draw_w == 250.0
    assert s0.sm_clock_mhz == 1980
    assert s0.fan_pct == 30
    assert s0.pstate == 0
    assert s0.ecc_uncorrected_volatile == 0
    assert s0.throttle_reasons == ()
    assert s0.compute_process_count == 1
    assert s0.health.status is HealthStatus.OK
    backend.close()
    assert fake.initialised == 0


@pytest.mark.parametrize(
    ("code", "function", "field"),
    [
        (pynvml.NVML_ERROR_NOT_SUPPORTED, "nvmlDeviceGetPowerUsage", "power_draw_w"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "nvmlDeviceGetFanSpeed", "fan_pct"),
        (pynvml.NVML_ERROR_NOT_FOUND, "nvmlDeviceGetPerformanceState", "pstate"),
        (pynvml.NVML_ERROR_UNKNOWN, "nvmlDeviceGetTotalEccErrors", "ecc_uncorrected_volatile"),
        (pynvml.NVML_ERROR_TIMEOUT, "nvmlDeviceGetUtilizationRates", "utilization_pct"),
    ],
)
def test_an_unreadable_field_is_none_on_that_gpu_only(code: int, function: str, field: str) -> None:
    fake = FakeNvml(gpus(2))
    fake.gpus[1].errors[function] = code
    backend = opened(fake)
    samples = backend.sample()
    assert getattr(samples[1], field) is None
    assert getattr(samples[0], field) is not None
    # Every other field of the affected GPU is still there.
    assert samples[1].memory_used_mib == 1024
    assert samples[1].temperature_c == 45
    assert samples[1].health.status is HealthStatus.OK


def test_a_missing_symbol_is_none_on_every_gpu_and_not_an_error() -> None:
    # FunctionNotFound comes from the library, not a card: every GPU reads None.
    fake = FakeNvml(gpus(2), missing={"nvmlDeviceGetFanSpeed"})
    samples = opened(fake).sample()
    assert [s.fan_pct for s in samples] == [None, None]
    assert [s.temperature_c for s in samples] == [45, 45]


def test_missing_v3_process_list_falls_back_to_v2_and_is_looked_up_once() -> None:
    fake = FakeNvml(gpus(1), missing={"nvmlDeviceGetComputeRunningProcesses_v3"})
    fake.gpus[0].processes = 3
    backend = opened(fake)
    for _ in range(4):
        assert backend.sample()[0].compute_process_count == 3
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 1
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 4


@pytest.mark.parametrize(
    ("missing", "fallback", "field", "expected"),
    [
        ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature", "temperature_c", 45),
        ("nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo", "memory_used_mib", 1024),
        (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
            "throttle_reasons",
            ("hw_slowdown",),
        ),
    ],
)
def test_versioned_entry_points_fall_back(
    missing: str, fallback: str, field: str, expected: object
) -> None:
    fake = FakeNvml(gpus(1), missing={missing})
    fake.gpus[0].throttle_reasons = 0x8
    backend = opened(fake)
    assert getattr(backend.sample()[0], field) == expected
    assert fake.calls[fallback] >= 1


def test_every_entry_point_missing_gives_none_not_an_error() -> None:
    fake = FakeNvml(
        gpus(1),
        missing={
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetComputeRunningProcesses_v2",
        },
    )
    assert opened(fake).sample()[0].compute_process_count is None


def test_a_wrapper_the_binding_lacks_is_function_not_found_and_falls_back() -> None:
    # nvidia-ml-py 12.535 (allowed by pyproject) has neither GetTemperatureV nor the _v2 list.
    fake = FakeNvml(
        gpus(2),
        absent={
            "nvmlDeviceGetTemperatureV",
            "nvmlDeviceGetComputeRunningProcesses_v2",
            "nvmlDeviceGetFanSpeed",
        },
    )
    backend = opened(fake)
    for _ in range(2):
        samples = backend.sample()
        assert [s.temperature_c for s in samples] == [45, 45]  # GetTemperature fallback
        assert [s.compute_process_count for s in samples] == [1, 1]  # _v3 is there
        assert [s.fan_pct for s in samples] == [None, None]
        assert [s.health.status for s in samples] == [HealthStatus.OK, HealthStatus.OK]
    assert fake.calls["nvmlDeviceGetTemperature"] == 4
    backend.close()


def test_a_binding_without_any_process_list_wrapper_reads_none() -> None:
    fake = FakeNvml(
        gpus(1),
        absent={
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetComputeRunningProcesses_v2",
        },
    )
    sample = opened(fake).sample()[0]
    assert sample.compute_process_count is None
    assert sample.temperature_c == 45


def test_a_binding_without_the_library_mismatch_error_class_still_works() -> None:
    # nvidia-ml-py 12.535 has no NVMLLibraryMismatchError: importing and sampling must not
    # need it. A fresh interpreter, so the real module is imported without it.
    script = textwrap.dedent(
        """
        import json, pynvml
        del pynvml.NVMLLibraryMismatchError
        from agent.gpu.nvml import NvmlBackend
        from tests.agent.gpu.fake_pynvml import FakeGpu, FakeNvml
        fake = FakeNvml(
            [FakeGpu(uuid="GPU-0"), FakeGpu(uuid="GPU-1")],
            absent={"nvmlDeviceGetTemperatureV"},
            missing={"nvmlDeviceGetFanSpeed"},
        )
        backend = NvmlBackend(nvml=fake)
        backend.open()
        samples = backend.sample()
        backend.close()
        print(json.dumps([[s.uuid, s.temperature_c, s.fan_pct] for s in samples]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [["GPU-0", 45, None], ["GPU-1", 45, None]]


def test_missing_cuda_v2_falls_back_to_the_old_call() -> None:
    fake = FakeNvml(
        gpus(1), missing={"nvmlSystemGetCudaDriverVersion_v2"}, cuda_driver_version=11080
    )
    assert opened(fake).system_info().cuda_driver_version == "11.8"


def test_gpu_lost_mid_sample_keeps_earlier_fields_and_spares_the_others() -> None:
    fake = FakeNvml(gpus(3))
    backend = opened(fake, policy=HealthPolicy(recover_after_ok_samples=2))
    backend.sample()
    fake.gpus[1].errors["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_GPU_IS_LOST
    samples = backend.sample()
    assert [s.health.status for s in samples] == [
        HealthStatus.OK,
        HealthStatus.LOST,
        HealthStatus.OK,
    ]
    lost = samples[1]
    assert lost.lost is True
    assert lost.uuid == "GPU-0001"
    assert lost.utilization_pct == 40  # read before the GPU fell off
    assert lost.power_draw_w is None
    assert lost.health.reason == "gpu_is_lost"


def test_lost_gpu_recovers_after_n_good_samples_and_its_handle_is_reacquired() -> None:
    fake = FakeNvml(gpus(2))
    backend = opened(fake, policy=HealthPolicy(recover_after_ok_samples=3))
    fake.gpus[0].lost = True
    assert backend.sample()[0].health.status is HealthStatus.LOST
    handles_before = fake.calls["nvmlDeviceGetHandleByIndex"]
    fake.gpus[0].lost = False
    statuses = [backend.sample()[0].health for _ in range(3)]
    assert [h.status for h in statuses] == [HealthStatus.LOST, HealthStatus.LOST, HealthStatus.OK]
    assert statuses[0].reason == "gpu_is_lost (recovering 1/3)"
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == handles_before + 1


def test_gpu_lost_at_enumeration_is_listed_by_index() -> None:
    fake = FakeNvml(gpus(2))
    fake.gpus[1].lost = True
    backend = opened(fake)
    listed = backend.gpus()
    assert [g.index for g in listed] == [0, 1]
    assert listed[1].uuid is None
    sample = backend.sample()[1]
    assert sample.health.status is HealthStatus.LOST


def test_library_missing_is_a_clear_gpu_access_error() -> None:
    backend = NvmlBackend(nvml=FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    with pytest.raises(NvmlLibraryNotFoundError, match=r"libnvidia-ml\.so\.1") as info:
        backend.open()
    assert info.value.exit_code == EX_UNAVAILABLE


def test_driver_library_mismatch_has_its_own_message() -> None:
    backend = NvmlBackend(nvml=FakeNvml([], init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH))
    with pytest.raises(NvmlDriverMismatchError, match="mismatch") as info:
        backend.open()
    assert "reboot" in str(info.value)
    assert info.value.exit_code == EX_UNAVAILABLE


def test_driver_not_loaded_is_a_gpu_access_error() -> None:
    backend = NvmlBackend(nvml=FakeNvml([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    with pytest.raises(GpuAccessError, match="driver is not loaded"):
        backend.open()


def test_a_failed_open_leaves_nvml_shut_down() -> None:
    class CountFails(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    fake = CountFails(gpus(1))
    with pytest.raises(GpuAccessError, match="nvmlDeviceGetCount failed"):
        NvmlBackend(nvml=fake).open()
    assert fake.initialised == 0


def test_hung_call_marks_only_that_gpu_unresponsive_and_it_recovers() -> None:
    fake = FakeNvml(gpus(2))
    release = threading.Event()
    backend = opened(fake, deadline_s=0.3, policy=HealthPolicy(recover_after_ok_samples=2))
    fake.gpus[1].hang["nvmlDeviceGetPowerUsage"] = release
    started = time.monotonic()
    samples = backend.sample()
    assert time.monotonic() - started < 2.0
    assert samples[0].health.status is HealthStatus.OK
    assert samples[0].power_draw_w == 250.0
    assert samples[1].driver_unresponsive is True
    assert samples[1].health.status is HealthStatus.UNHEALTHY
    assert samples[1].health.reason == "driver_unresponsive"
    # Still hung: the next sample answers at once instead of stacking another thread.
    started = time.monotonic()
    assert backend.sample()[1].driver_unresponsive is True
    assert time.monotonic() - started < 0.25
    del fake.gpus[1].hang["nvmlDeviceGetPowerUsage"]
    release.set()
    # The hung call returns on its own thread; the first reading after that is the first good one.
    readings: list[GpuSample] = []
    assert wait_until(
        lambda: not readings.append(backend.sample()[1]) and not readings[-1].driver_unresponsive
    )
    assert readings[-1].health.status is HealthStatus.UNHEALTHY  # 1 of 2 good readings
    assert readings[-1].health.reason == "driver_unresponsive (recovering 1/2)"
    assert backend.sample()[1].health.status is HealthStatus.OK
    backend.close()


def test_close_gives_up_on_a_reading_that_holds_the_backend(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # SIGTERM must end the agent within 5 s: close() cannot wait out a sample's 3 s deadline.
    fake = FakeNvml(gpus(2))
    release = threading.Event()
    backend = opened(fake, deadline_s=3.0)
    fake.gpus[1].hang["nvmlDeviceGetPowerUsage"] = release
    reader = threading.Thread(target=backend.sample)
    reader.start()
    try:
        assert wait_until(lambda: fake.calls["nvmlDeviceGetPowerUsage"] == 2)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="agent.gpu.nvml"):
            backend.close(timeout_s=0.2)
        assert time.monotonic() - started < 1.0
        assert fake.initialised == 1  # left to process exit
        assert any("close" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
        reader.join(5)


def test_close_does_not_wait_out_a_hung_nvml_shutdown() -> None:
    release = threading.Event()

    class HangingShutdown(FakeNvml):
        def nvmlShutdown(self) -> None:
            release.wait(10)

    backend = opened(HangingShutdown(gpus(1)), deadline_s=3.0)
    started = time.monotonic()
    try:
        backend.close(timeout_s=0.2)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()


def test_hung_nvml_init_is_a_gpu_access_error_not_a_freeze() -> None:
    release = threading.Event()

    class HangingInit(FakeNvml):
        def nvmlInit(self) -> None:
            release.wait(10)

    backend = NvmlBackend(nvml=HangingInit([]), deadline_s=0.2)
    with pytest.raises(GpuAccessError, match="driver unresponsive"):
        backend.open()
    release.set()


def test_critical_xid_makes_its_gpu_unhealthy_and_ignored_xids_do_not() -> None:
    fake = FakeNvml(gpus(2))
    backend = opened(fake, policy=HealthPolicy(recover_after_ok_samples=2))
    assert fake.registered == {0, 1}
    fake.events += [(1, 79), (0, 13)]
    samples = backend.sample()
    assert samples[1].xid_events == (79,)
    assert samples[1].health.status is HealthStatus.UNHEALTHY
    assert samples[1].health.reason == "xid 79"
    assert samples[0].xid_events == (13,)
    assert samples[0].health.status is HealthStatus.OK
    assert [backend.sample()[1].health.status for _ in range(2)] == [
        HealthStatus.UNHEALTHY,
        HealthStatus.OK,
    ]


def test_one_gpu_hanging_in_xid_registration_does_not_stop_the_others() -> None:
    fake = FakeNvml(gpus(4))
    release = threading.Event()
    fake.gpus[2].hang["nvmlDeviceGetSupportedEventTypes"] = release
    try:
        started = time.monotonic()
        backend = opened(fake, deadline_s=0.3, policy=HealthPolicy(recover_after_ok_samples=1))
        assert time.monotonic() - started < 2.0  # one deadline for all GPUs, not one each
        assert [g.uuid for g in backend.gpus()] == ["GPU-0000", "GPU-0001", "GPU-0002", "GPU-0003"]
        assert fake.registered == {0, 1, 3}
        fake.events.append((1, 79))
        samples = backend.sample()
        assert samples[2].driver_unresponsive is True  # its worker is still in the hung call
        assert samples[2].health.reason == "driver_unresponsive"
        assert samples[1].xid_events == (79,)  # the others' Xid events still arrive
        assert [s.health.status for s in samples] == [
            HealthStatus.OK,
            HealthStatus.UNHEALTHY,
            HealthStatus.UNHEALTHY,
            HealthStatus.OK,
        ]
    finally:
        release.set()
    del fake.gpus[2].hang["nvmlDeviceGetSupportedEventTypes"]
    assert wait_until(lambda: not backend.sample()[2].driver_unresponsive)
    backend.close()
    assert fake.initialised == 0


def test_one_gpu_failing_xid_registration_is_logged_and_the_others_register(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeNvml(gpus(3))
    fake.gpus[0].errors["nvmlDeviceRegisterEvents"] = pynvml.NVML_ERROR_UNKNOWN
    with caplog.at_level(logging.WARNING, logger="agent.gpu.nvml"):
        backend = opened(fake)
    assert fake.registered == {1, 2}
    assert any("GPU 0" in r.getMessage() and "Xid" in r.getMessage() for r in caplog.records)
    fake.events += [(2, 79)]
    samples = backend.sample()
    assert samples[2].health.reason == "xid 79"
    assert samples[0].health.status is HealthStatus.OK
    backend.close()


def test_xid_events_unsupported_leaves_health_to_the_other_signals() -> None:
    fake = FakeNvml(gpus(1))
    fake.gpus[0].xid_supported = False
    backend = opened(fake)
    assert fake.calls["nvmlDeviceRegisterEvents"] == 0
    fake.gpus[0].ecc_uncorrected_volatile = 2
    assert backend.sample()[0].health.reason == "ecc_uncorrected 2"


def test_uncorrected_ecc_growth_is_unhealthy() -> None:
    fake = FakeNvml(gpus(1))
    backend = opened(fake, policy=HealthPolicy(recover_after_ok_samples=1))
    assert backend.sample()[0].health.status is HealthStatus.OK
    fake.gpus[0].ecc_uncorrected_volatile = 1
    assert backend.sample()[0].health.status is HealthStatus.UNHEALTHY
    assert backend.sample()[0].health.status is HealthStatus.OK  # no new errors since


def test_excluded_gpus_by_uuid_and_index_are_never_offered() -> None:
    backend = opened(FakeNvml(gpus(4)), exclude=["GPU-0001", 3])
    assert [g.uuid for g in backend.gpus()] == ["GPU-0000", "GPU-0002"]
    assert [s.uuid for s in backend.sample()] == ["GPU-0000", "GPU-0002"]


def test_mig_devices_are_listed_with_uuid_profile_and_memory() -> None:
    fake = FakeNvml(gpus(1))
    fake.gpus[0].name = "NVIDIA A100-SXM4-40GB"
    fake.gpus[0].mig_mode = pynvml.NVML_DEVICE_MIG_ENABLE
    fake.gpus[0].migs = [
        FakeMig("MIG-aaaa", "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 19968, gpu_instance_id=1),
        FakeMig("MIG-bbbb", "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 4864, gpu_instance_id=9),
    ]
    backend = opened(fake, exclude=["MIG-bbbb"])
    (gpu,) = backend.gpus()
    assert gpu.mig_mode is True
    assert [
        (m.uuid, m.profile, m.memory_total_mib, m.gpu_instance_id) for m in gpu.mig_devices
    ] == [("MIG-aaaa", "3g.20gb", 19968, 1)]
