"""Fixtures for tier 2: the fake libnvidia-ml.so.1, built once per variant, and its config."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from pathlib import Path

import pynvml
import pytest

from tests.fake_nvml.fakelib import FakeNvmlConfig, build, document

# Versioned entry points whose older fallback the agent must use when they are missing.
OLD_DRIVER_OMITS = (
    "nvmlDeviceGetTemperatureV",
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetMemoryInfo_v2",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlSystemGetCudaDriverVersion_v2",
)


@pytest.fixture(scope="session")
def fake_lib_dir() -> Path:
    return build()


@pytest.fixture(scope="session")
def old_driver_lib_dir() -> Path:
    return build(OLD_DRIVER_OMITS)


@pytest.fixture
def nvml_config(tmp_path: Path) -> Callable[..., FakeNvmlConfig]:
    def make(n_gpus: int = 3, **system: object) -> FakeNvmlConfig:
        return FakeNvmlConfig(tmp_path / "fake-nvml.json", document(n_gpus, **system))

    return make


@pytest.fixture
def load_fake_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Path, FakeNvmlConfig], None]]:
    """Point the real pynvml in this process at a fake library (its ctypes path runs)."""

    def load(lib_dir: Path, config: FakeNvmlConfig) -> None:
        monkeypatch.setenv("FAKE_NVML_CONFIG", str(config.path))
        pynvml._nvmlGetFunctionPointer_cache.clear()
        pynvml.nvmlLib = ctypes.CDLL(str(lib_dir / "libnvidia-ml.so.1"))

    yield load
    pynvml._nvmlGetFunctionPointer_cache.clear()
    pynvml.nvmlLib = None
