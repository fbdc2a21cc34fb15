"""The NVML choke point: the binding check, `NvmlSession` (errors → None, versioned fallbacks,
lost GPUs) and the small conversions every reader shares.

This package (`agent/gpu/nvml/`) is the only code that imports `pynvml`. At import this module
checks that `pynvml` is the official binding from the `nvidia-ml-py` distribution (the
deprecated `pynvml` distribution ships an incompatible module of the same name);
`NvmlBackend.open()` refuses to start with any other.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pynvml

from agent.gpu.backend import GpuInfo
from agent.gpu.deadline import DeadlineWorker

log = logging.getLogger("agent.gpu.nvml")  # one name for the whole package

NVML_LIBRARY = "libnvidia-ml.so.1"
DEFAULT_DEADLINE_S = 5.0
DEFAULT_CLOSE_TIMEOUT_S = 2.0
MIB = 1024 * 1024
MAX_EVENTS_PER_SAMPLE = 1024

# Errors that mean "this entry point does not exist here": the next fallback is tried. The
# bindings' library-mismatch error (raised by the unversioned process-list wrappers) came with
# nvidia-ml-py 12.550; older bindings allowed by pyproject lack the class, so it is optional.
_LIBRARY_MISMATCH: type[BaseException] | None = getattr(pynvml, "NVMLLibraryMismatchError", None)
MISSING_SYMBOL: tuple[type[BaseException], ...] = (
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


class GpuLostError(Exception):
    """NVML answered GPU_IS_LOST; aborts the rest of one GPU's reading."""


def mib(value: int | None) -> int | None:
    return None if value is None else int(value) // MIB


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).strip()
    return text or None


def cuda_version(value: int | None) -> str | None:
    if value is None or value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def blank_info(index: int) -> GpuInfo:
    return GpuInfo(index, None, None, None, None, None, None, None, None, None, None)


MIG_PROFILE = re.compile(r"\bMIG\s+(\S+)\s*$")

# Entry points whose pynvml wrapper takes different arguments from the name we look up.
_ADAPTERS: dict[str, Callable[..., Any]] = {
    "nvmlDeviceGetMemoryInfo_v2": lambda nv, h: nv.nvmlDeviceGetMemoryInfo(h, pynvml.nvmlMemory_v2),
}


class NvmlSession:
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
        point missing, any other NVML error); raises `GpuLostError` on GPU_IS_LOST. Which entry
        point exists is remembered, so a missing `_v3` is looked up once, not on every sample.
        """
        chain = (names,) if isinstance(names, str) else names
        start = self._chosen.get(chain, 0)
        for i in range(start, len(chain)):
            try:
                value = self.call(chain[i], *args)
            except pynvml.NVMLError_GpuIsLost as exc:
                raise GpuLostError(chain[i]) from exc
            except MISSING_SYMBOL:
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
class NvmlGpu:
    """One enumerated GPU: its fingerprint, its handle (None while lost) and its worker."""

    index: int
    info: GpuInfo
    handle: Any | None
    worker: DeadlineWorker
