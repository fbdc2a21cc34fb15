"""The CUDA self-test of an attestation: a challenge the card answers with its own memory and
its own arithmetic, through the CUDA driver API (agent/gpu/cuda.py) and attest.ptx.

1. Proof of memory: the card fills most of the memory NVML claims (`fill_fraction`) with the
   SplitMix64 sequence of the challenge's seed (aitbc_common/proof.py). Only then are the
   positions chosen — by the coordinator, or at random here — and the words there read back.
   A card with less memory cannot allocate the fill; one that does not compute the sequence of
   this seed (a recorded fill replayed, a broken card) reads back wrong words.
2. Compute: an FMA loop's FP32 rate (best of three runs).
3. Bandwidth: a device-to-device copy inside the filled buffer (best of three), after the
   words were read, so the copy cannot disturb the proof.

The figures are judged against the model's datasheet band (aitbc_common/gpu_models.toml).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from agent.attest.checks import Check
from agent.gpu.cuda import CudaContext, CudaDevice, CudaDriver, CudaError
from aitbc_common import proof
from aitbc_common.gpu_models import Bands, GpuModel

GIB = 1 << 30
BLOCK = 256
FMA_ITERATIONS = 65536  # per thread: 1 Mi FLOPs; ~4 ms on an H100 at the grid below
FMA_BLOCKS_PER_SM = 8
FILL_BLOCKS_PER_SM = 32
COPY_BYTES = 2 * GIB
RUNS = 3


def kernels() -> bytes:
    """The shipped PTX (built from attest.cu by `make ptx`)."""
    return resources.files("agent.attest").joinpath("attest.ptx").read_bytes()


@dataclass(frozen=True, slots=True)
class SelfTest:
    """What the card answered and measured."""

    words: int
    positions: list[int]
    values: list[int]
    fill_tbps: float
    fp32_tflops: float
    copy_tbps: float


class SelfTestError(Exception):
    """The self-test could not run to its end; `check` says why, as a failed check."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.reason)
        self.check = check


def run(
    driver: CudaDriver,
    device: CudaDevice,
    *,
    seed: int,
    words: int,
    positions_after_fill: Callable[[int], list[int]],
) -> SelfTest:
    """Fill `words` 64-bit words from `seed`, answer the positions asked after the fill,
    then time the FMA kernel and a copy.

    Raises:
        SelfTestError: allocation, the module or a launch failed (its check says which).
    """
    try:
        with driver.context(device.ordinal) as ctx:
            module = ctx.load_module(kernels())
            fill, fma = module.function("aitbc_fill"), module.function("aitbc_fma")
            try:
                buf = ctx.alloc(words * 8)
            except CudaError as exc:
                raise SelfTestError(
                    Check(
                        "proof_of_memory",
                        False,
                        f"could not allocate {words * 8 / GIB:.1f} GiB ({exc.name}): the card "
                        "has less memory than NVML claims, or something else holds it",
                    )
                ) from exc
            try:
                with ctx.timed() as fill_ms:
                    ctx.launch(
                        fill,
                        device.sm_count * FILL_BLOCKS_PER_SM,
                        BLOCK,
                        [buf.arg, ctypes.c_uint64(words), ctypes.c_uint64(seed)],
                    )
                positions = positions_after_fill(words)
                values = [buf.read_u64(p) for p in positions]
                fp32 = _fma_tflops(ctx, fma, device)
                copy = _copy_tbps(ctx, buf.ptr, words * 8)
            finally:
                buf.free()
    except CudaError as exc:
        raise SelfTestError(Check("cuda_self_test", False, f"{exc}")) from exc
    return SelfTest(
        words=words,
        positions=positions,
        values=values,
        fill_tbps=words * 8 / (fill_ms[0] / 1e3) / 1e12 if fill_ms[0] > 0 else 0.0,
        fp32_tflops=fp32,
        copy_tbps=copy,
    )


def _fma_tflops(ctx: CudaContext, fma: Any, device: CudaDevice) -> float:
    grid = device.sm_count * FMA_BLOCKS_PER_SM
    out = ctx.alloc(grid * BLOCK * 4)
    try:
        best_ms = None
        for _ in range(RUNS):
            with ctx.timed() as ms:
                ctx.launch(fma, grid, BLOCK, [out.arg, ctypes.c_int(FMA_ITERATIONS)])
            best_ms = ms[0] if best_ms is None else min(best_ms, ms[0])
    finally:
        out.free()
    flops = grid * BLOCK * FMA_ITERATIONS * 16
    return flops / (best_ms / 1e3) / 1e12 if best_ms else 0.0


def _copy_tbps(ctx: CudaContext, base: int, nbytes: int) -> float:
    size = min(COPY_BYTES, nbytes // 2) & ~0xFFFF
    if size <= 0:
        return 0.0
    best_ms = None
    for _ in range(RUNS):
        with ctx.timed() as ms:
            ctx.copy(base + size, base, size)
        best_ms = ms[0] if best_ms is None else min(best_ms, ms[0])
    return 2 * size / (best_ms / 1e3) / 1e12 if best_ms else 0.0  # read + write


def judge(result: SelfTest, seed: int, model: GpuModel, bands: Bands) -> list[Check]:
    """The verdicts on what the card answered: right words, believable figures."""
    wrong = sum(
        got != want
        for got, want in zip(result.values, proof.expected(seed, result.positions), strict=True)
    )
    size = f"{result.words * 8 / GIB:.1f} GiB"
    memory = Check(
        "proof_of_memory",
        wrong == 0 and bool(result.positions),
        f"filled {size}; {len(result.positions)} words read back at positions chosen after "
        "the fill: "
        + ("all right" if wrong == 0 else f"{wrong} wrong (not this challenge's fill)"),
    )
    return [
        memory,
        _in_band(
            "fp32_throughput",
            result.fp32_tflops,
            model.fp32_tflops,
            bands.fp32_min,
            bands.fp32_max,
            "TFLOPS",
            model.model,
        ),
        _in_band(
            "memory_bandwidth",
            result.copy_tbps,
            model.memory_tbps,
            bands.bandwidth_min,
            bands.bandwidth_max,
            "TB/s",
            model.model,
        ),
    ]


def _in_band(
    name: str, got: float, datasheet: float, low: float, high: float, unit: str, model: str
) -> Check:
    ok = datasheet * low <= got <= datasheet * high
    band = f"{datasheet * low:.3g} to {datasheet * high:.3g} {unit}"
    verdict = "within" if ok else ("below" if got < datasheet * low else "above")
    return Check(
        name,
        ok,
        f"{got:.3g} {unit}, {verdict} the {model}'s band {band} (datasheet {datasheet:g})",
    )


def cuda_device_check(
    device: CudaDevice | None, nvml_name: str | None, nvml_mib: int | None
) -> Check:
    """Does CUDA see the same card NVML describes? A patched NVML rarely patches CUDA too."""
    if device is None:
        return Check("cuda_device", False, "CUDA lists no device with this UUID")
    problems = []
    if device.name != nvml_name:
        problems.append(f"CUDA names it {device.name!r}")
    if nvml_mib and abs(device.total_mib - nvml_mib) > nvml_mib * 0.01:
        problems.append(f"CUDA says {device.total_mib} MiB, NVML {nvml_mib} MiB")
    if problems:
        return Check("cuda_device", False, "; ".join(problems))
    return Check("cuda_device", True, f"CUDA device {device.ordinal}: same name and memory as NVML")
