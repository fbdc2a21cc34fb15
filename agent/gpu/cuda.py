"""The CUDA driver API through ctypes on `libcuda.so.1`: just what the attestation self-test
needs (devices, a context, a module from PTX, memory, kernel launches, event timing).

No CUDA Python dependency and no toolkit: `libcuda.so.1` comes with the NVIDIA driver, and
the kernels are PTX the driver compiles for the card (agent/attest/attest.ptx). Like the rest
of `agent/gpu`, this imports only the standard library. Every failing call raises
`CudaError` naming the call and the driver's error name (`CUDA_ERROR_OUT_OF_MEMORY`).

    driver = CudaDriver.load()              # CudaUnavailableError: no driver, cuInit failed
    for dev in driver.devices(): ...        # name, uuid (NVML's format), memory, PCI bus id
    with driver.context(dev.ordinal) as ctx:
        module = ctx.load_module(ptx_bytes)
        buf = ctx.alloc(1 << 30)
        ctx.launch(module.function("aitbc_fill"), grid, block, [buf.arg, u64(n), u64(seed)])
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from agent.gpu.errors import GpuError

LIBRARY = "libcuda.so.1"
CUDA_SUCCESS = 0
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
EVENT_DEFAULT = 0

CUdeviceptr = ctypes.c_uint64
_handle = ctypes.c_void_p  # CUcontext, CUmodule, CUfunction, CUevent: opaque pointers


class CudaError(GpuError):
    """A CUDA driver call failed."""

    def __init__(self, call: str, code: int, name: str) -> None:
        super().__init__(f"{call}: {name}")
        self.call = call
        self.code = code
        self.name = name


class CudaUnavailableError(CudaError):
    """The CUDA driver cannot be used at all: no libcuda.so.1, or cuInit failed."""


@dataclass(frozen=True, slots=True)
class CudaDevice:
    ordinal: int
    name: str
    uuid: str  # "GPU-8d6f…", as NVML writes it, so the two can be matched
    total_mib: int
    compute_capability: str
    pci_bus_id: str  # "0000:3B:00.0" (CUDA's short domain)
    sm_count: int


class DeviceBuffer:
    """Device memory of one allocation; `arg` is what a kernel parameter list takes."""

    def __init__(self, ctx: CudaContext, ptr: int, nbytes: int) -> None:
        self._ctx = ctx
        self.ptr = ptr
        self.nbytes = nbytes
        self.arg = CUdeviceptr(ptr)

    def read_u64(self, index: int) -> int:
        out = ctypes.c_uint64()
        self._ctx.call("cuMemcpyDtoH_v2", ctypes.byref(out), CUdeviceptr(self.ptr + 8 * index), 8)
        return out.value

    def free(self) -> None:
        if self.ptr:
            self._ctx.call("cuMemFree_v2", CUdeviceptr(self.ptr))
            self.ptr = 0


class Module:
    def __init__(self, ctx: CudaContext, handle: Any) -> None:
        self._ctx = ctx
        self.handle = handle

    def function(self, name: str) -> Any:
        fn = _handle()
        self._ctx.call("cuModuleGetFunction", ctypes.byref(fn), self.handle, name.encode())
        return fn


class CudaContext:
    """The device's primary context, current on this thread while the `with` block runs."""

    def __init__(self, driver: CudaDriver, ordinal: int) -> None:
        self._driver = driver
        self.ordinal = ordinal

    def call(self, name: str, *args: Any) -> None:
        self._driver.call(name, *args)

    def load_module(self, image: bytes) -> Module:
        module = _handle()
        self.call("cuModuleLoadData", ctypes.byref(module), ctypes.c_char_p(image + b"\0"))
        return Module(self, module)

    def alloc(self, nbytes: int) -> DeviceBuffer:
        ptr = CUdeviceptr()
        self.call("cuMemAlloc_v2", ctypes.byref(ptr), ctypes.c_size_t(nbytes))
        return DeviceBuffer(self, ptr.value, nbytes)

    def launch(
        self, function: Any, grid: int, block: int, args: Sequence[ctypes._SimpleCData[Any]]
    ) -> None:
        params = (ctypes.c_void_p * len(args))(*(ctypes.addressof(a) for a in args))
        self.call("cuLaunchKernel", function, grid, 1, 1, block, 1, 1, 0, None, params, None)

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        self.call("cuMemcpyDtoD_v2", CUdeviceptr(dst), CUdeviceptr(src), ctypes.c_size_t(nbytes))

    def synchronize(self) -> None:
        self.call("cuCtxSynchronize")

    @contextmanager
    def timed(self) -> Iterator[list[float]]:
        """Time the GPU work queued inside the block with events; yields [milliseconds],
        filled once the block ended and the work finished."""
        start, end = _handle(), _handle()
        self.call("cuEventCreate", ctypes.byref(start), EVENT_DEFAULT)
        self.call("cuEventCreate", ctypes.byref(end), EVENT_DEFAULT)
        result: list[float] = []
        try:
            self.call("cuEventRecord", start, None)
            yield result
            self.call("cuEventRecord", end, None)
            self.call("cuEventSynchronize", end)
            ms = ctypes.c_float()
            self.call("cuEventElapsedTime", ctypes.byref(ms), start, end)
            result.append(ms.value)
        finally:
            self.call("cuEventDestroy_v2", start)
            self.call("cuEventDestroy_v2", end)


class CudaDriver:
    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib

    @classmethod
    def load(cls, library: str = LIBRARY) -> CudaDriver:
        """Load the driver library and initialise it.

        Raises:
            CudaUnavailableError: the library is missing or cuInit failed (no GPU, no driver).
        """
        try:
            lib = ctypes.CDLL(library)
        except OSError as exc:
            raise CudaUnavailableError("dlopen", -1, f"{library} not found ({exc})") from exc
        driver = cls(lib)
        try:
            driver.call("cuInit", 0)
        except CudaError as exc:
            raise CudaUnavailableError(exc.call, exc.code, exc.name) from exc
        return driver

    def call(self, name: str, *args: Any) -> None:
        try:
            fn = getattr(self._lib, name)
        except AttributeError as exc:
            raise CudaError(name, -1, "not in this libcuda (driver too old)") from exc
        code = int(fn(*args))
        if code != CUDA_SUCCESS:
            raise CudaError(name, code, self.error_name(code))

    def error_name(self, code: int) -> str:
        text = ctypes.c_char_p()
        try:
            if self._lib.cuGetErrorName(code, ctypes.byref(text)) == CUDA_SUCCESS and text.value:
                return text.value.decode()
        except AttributeError:
            pass
        return f"CUDA error {code}"

    def version(self) -> str:
        """The driver's CUDA version, "12.4"."""
        v = ctypes.c_int()
        self.call("cuDriverGetVersion", ctypes.byref(v))
        return f"{v.value // 1000}.{v.value % 1000 // 10}"

    def devices(self) -> list[CudaDevice]:
        count = ctypes.c_int()
        self.call("cuDeviceGetCount", ctypes.byref(count))
        return [self._device(i) for i in range(count.value)]

    def _device(self, ordinal: int) -> CudaDevice:
        dev = ctypes.c_int()
        self.call("cuDeviceGet", ctypes.byref(dev), ordinal)
        name = ctypes.create_string_buffer(256)
        self.call("cuDeviceGetName", name, 256, dev)
        total = ctypes.c_size_t()
        self.call("cuDeviceTotalMem_v2", ctypes.byref(total), dev)
        uuid = (ctypes.c_ubyte * 16)()
        self.call("cuDeviceGetUuid", ctypes.byref(uuid), dev)
        bus = ctypes.create_string_buffer(64)
        self.call("cuDeviceGetPCIBusId", bus, 64, dev)

        def attribute(which: int) -> int:
            value = ctypes.c_int()
            self.call("cuDeviceGetAttribute", ctypes.byref(value), which, dev)
            return value.value

        return CudaDevice(
            ordinal=ordinal,
            name=name.value.decode(errors="replace"),
            uuid=format_uuid(bytes(uuid)),
            total_mib=total.value // (1024 * 1024),
            compute_capability=f"{attribute(ATTR_COMPUTE_CAPABILITY_MAJOR)}."
            f"{attribute(ATTR_COMPUTE_CAPABILITY_MINOR)}",
            pci_bus_id=bus.value.decode(errors="replace"),
            sm_count=attribute(ATTR_MULTIPROCESSOR_COUNT),
        )

    @contextmanager
    def context(self, ordinal: int) -> Iterator[CudaContext]:
        dev = ctypes.c_int()
        self.call("cuDeviceGet", ctypes.byref(dev), ordinal)
        ctx = _handle()
        self.call("cuDevicePrimaryCtxRetain", ctypes.byref(ctx), dev)
        try:
            self.call("cuCtxSetCurrent", ctx)
            yield CudaContext(self, ordinal)
        finally:
            self.call("cuDevicePrimaryCtxRelease_v2", dev)


def format_uuid(raw: bytes) -> str:
    """CUDA's 16 UUID bytes in NVML's spelling: `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`."""
    h = raw.hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def normalize_bus_id(bus_id: str | None) -> str | None:
    """`00000000:3B:00.0` (NVML) and `0000:3b:00.0` (CUDA) both become `0000:3b:00.0`."""
    if not bus_id:
        return None
    parts = bus_id.strip().lower().split(":")
    if len(parts) != 3:
        return bus_id.strip().lower()
    try:
        domain = int(parts[0], 16)
    except ValueError:
        return bus_id.strip().lower()
    return f"{domain:04x}:{parts[1]}:{parts[2]}"
