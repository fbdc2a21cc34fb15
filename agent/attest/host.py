"""Attest the GPUs of this host: NVML cross-checks, then the CUDA self-test, per GPU.

`attest_gpu` is one GPU's attestation for a given challenge (a seed, and who picks the
positions after the fill: the coordinator, or `local_positions` for `aitbc-agent attest`).
A GPU is `verified` only when every check passed and the CUDA self-test ran: where libcuda is
missing, the NVML checks still run and the CUDA check fails with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.attest import selftest
from agent.attest.checks import Check, duplicate_uuids, identity_record, nvml_checks
from agent.gpu import GpuInfo
from agent.gpu.cuda import CudaDevice, CudaDriver, CudaError
from aitbc_common import proof
from aitbc_common.gpu_models import ModelTable

MIB = 1024 * 1024
LOCAL_POSITIONS = 64
IDENTITY_FILE = "attest.json"


@dataclass
class GpuAttestation:
    uuid: str | None
    index: int
    name: str | None
    model: str | None
    checks: list[Check]
    measured: dict[str, Any] = field(default_factory=dict)
    answer: selftest.SelfTest | None = None  # the raw words, for a coordinator's challenge

    @property
    def verified(self) -> bool:
        ran = any(c.name == "proof_of_memory" for c in self.checks)
        return ran and all(c.ok for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "index": self.index,
            "name": self.name,
            "model": self.model,
            "verified": self.verified,
            "checks": [c.as_json() for c in self.checks],
            "measured": self.measured,
        }


@dataclass(frozen=True, slots=True)
class Cuda:
    """The CUDA driver and its devices, or why there is none."""

    driver: CudaDriver | None
    devices: tuple[CudaDevice, ...] = ()
    error: str | None = None

    @classmethod
    def open(cls, library: str) -> Cuda:
        try:
            driver = CudaDriver.load(library)
            return cls(driver, tuple(driver.devices()))
        except CudaError as exc:
            return cls(None, error=str(exc))

    def device(self, uuid: str | None) -> CudaDevice | None:
        return next((d for d in self.devices if d.uuid == uuid), None)


def local_positions(words: int) -> list[int]:
    """Positions for an attestation without a coordinator: drawn here, after the fill."""
    return proof.choose_positions(words, LOCAL_POSITIONS)


def attest_gpu(
    info: GpuInfo,
    *,
    table: ModelTable,
    cuda: Cuda,
    previous: dict[str, Any] | None,
    seed: int,
    positions_after_fill: Callable[[int], list[int]],
    fill_fraction: float,
    words: int | None = None,
    refuse: str | None = None,
) -> GpuAttestation:
    """One GPU's attestation; `refuse` (e.g. "leased") fails it before the self-test runs.
    `words` is the fill's size when a coordinator set it, else `fill_fraction` of the memory
    NVML claims."""
    model, checks = nvml_checks(info, table, previous)
    result = GpuAttestation(
        info.uuid, info.index, info.name, None if model is None else model.model, checks
    )
    if refuse is not None:
        checks.append(Check("cuda_self_test", False, refuse))
        return result
    if cuda.driver is None:
        checks.append(Check("cuda_self_test", False, f"no CUDA driver: {cuda.error}"))
        return result
    if info.mig_mode:
        checks.append(
            Check("cuda_self_test", False, "MIG mode is on: the self-test needs the whole GPU")
        )
        return result
    device = cuda.device(info.uuid)
    checks.append(selftest.cuda_device_check(device, info.name, info.memory_total_mib))
    if device is None or model is None or not info.memory_total_mib:
        return result
    if words is None:
        words = int(info.memory_total_mib * MIB * fill_fraction) // 8
    try:
        answer = selftest.run(
            cuda.driver, device, seed=seed, words=words, positions_after_fill=positions_after_fill
        )
    except selftest.SelfTestError as exc:
        checks.append(exc.check)
        return result
    checks.extend(selftest.judge(answer, seed, model, table.bands))
    result.answer = answer
    result.measured = {
        "fp32_tflops": round(answer.fp32_tflops, 2),
        "memory_tbps": round(answer.copy_tbps, 3),
        "fill_tbps": round(answer.fill_tbps, 3),
        "filled_gib": round(answer.words * 8 / (1 << 30), 2),
        "words_checked": len(answer.positions),
    }
    return result


def attest_host(
    gpus: list[GpuInfo],
    *,
    table: ModelTable,
    cuda: Cuda,
    identities: IdentityStore,
    fill_fraction: float,
    refuse: Mapping[str, str],
    attested_at: str,
) -> list[GpuAttestation]:
    """Attest each GPU with a fresh local challenge, and remember the board behind each UUID
    for the next run (a swapped board fails `identity_stable` once, then is the one known)."""
    dupes = duplicate_uuids(gpus)
    out = []
    for info in gpus:
        seed = proof.new_seed()
        att = attest_gpu(
            info,
            table=table,
            cuda=cuda,
            previous=identities.get(info.uuid),
            seed=seed,
            positions_after_fill=local_positions,
            fill_fraction=fill_fraction,
            refuse=refuse.get(info.uuid or ""),
        )
        if info.uuid in dupes:
            att.checks.append(Check("uuid_unique", False, "another GPU of this host has it too"))
        if info.uuid:
            identities.put(info.uuid, identity_record(info, attested_at))
        out.append(att)
    identities.save()
    return out


class IdentityStore:
    """`attest.json` in the state directory: the board seen behind each UUID last time."""

    def __init__(self, state_dir: Path | None) -> None:
        self._path = None if state_dir is None else state_dir / IDENTITY_FILE
        self._records: dict[str, dict[str, Any]] = {}
        if self._path is not None and self._path.is_file():
            try:
                self._records = json.loads(self._path.read_text())
            except (OSError, ValueError):
                self._records = {}  # unreadable: start afresh (the next check says "first")

    def get(self, uuid: str | None) -> dict[str, Any] | None:
        return None if uuid is None else self._records.get(uuid)

    def put(self, uuid: str, record: dict[str, Any]) -> None:
        self._records[uuid] = record

    def save(self) -> None:
        """Best effort: a state directory that cannot be written loses only this memory."""
        if self._path is None:
            return
        tmp = self._path.with_suffix(".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._records, indent=1))
            os.replace(tmp, self._path)
        except OSError:
            pass
