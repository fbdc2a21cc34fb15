"""The NVML cross-checks of an attestation: does the card look like the model it says it is?

A spoofed GPU is most often a driver-level lie (a patched NVML, a shim on LD_PRELOAD, a
virtualised device) that renames a cheaper card. Such a lie rarely covers every fact NVML
reports, so each is checked against the model table (aitbc_common/gpu_models.toml): the PCI
device id, the memory size, the compute capability, the BAR1 aperture, the max SM clock, and
that the board answering to a UUID is the one seen at the last attestation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.gpu import GpuInfo
from aitbc_common.gpu_models import GpuModel, ModelTable


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict; `reason` says what was seen, passed or not."""

    name: str
    ok: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "reason": self.reason}


def nvml_checks(
    info: GpuInfo, table: ModelTable, previous: dict[str, Any] | None
) -> tuple[GpuModel | None, list[Check]]:
    """The model the NVML name means (None: not in the table) and the checks of its facts.

    `previous` is what the last attestation on this host recorded for the UUID (serial, PCI
    device id), or None the first time.
    """
    model = table.by_name(info.name)
    if model is None:
        return None, [
            Check(
                "model_known",
                False,
                f"{info.name!r} is not in the model table (aitbc_common/gpu_models.toml): "
                "it cannot be verified",
            )
        ]
    checks = [
        Check("model_known", True, f"{info.name} is the {model.model}"),
        _pci_device_id(info, model, table),
        _memory(info, model),
        _compute_capability(info, model),
    ]
    if model.bar1_min_mib is not None:
        checks.append(_bar1(info, model.bar1_min_mib))
    if model.max_sm_clock_mhz is not None and info.max_sm_clock_mhz is not None:
        checks.append(_max_clock(info.max_sm_clock_mhz, model))
    checks.append(_identity(info, previous))
    return model, checks


def _pci_device_id(info: GpuInfo, model: GpuModel, table: ModelTable) -> Check:
    got = info.pci_device_id
    if got is None:
        return Check("pci_device_id", False, "NVML reported no PCI device id")
    if got in model.pci_device_ids:
        return Check("pci_device_id", True, f"0x{got:04X} is a {model.model}")
    other = table.by_pci_device_id(got)
    what = f"a {other.model}" if other is not None else "no model the table knows"
    wanted = ", ".join(f"0x{i:04X}" for i in model.pci_device_ids)
    return Check(
        "pci_device_id",
        False,
        f"PCI device id 0x{got:04X} is {what}, not a {model.model} ({wanted})",
    )


def _memory(info: GpuInfo, model: GpuModel) -> Check:
    low, high = model.memory_mib
    got = info.memory_total_mib
    if got is None:
        return Check("memory_total", False, "NVML reported no memory size")
    ok = low <= got <= high
    verdict = "within" if ok else "outside"
    return Check(
        "memory_total",
        ok,
        f"{got} MiB, {verdict} the {model.model}'s {low} to {high} MiB",
    )


def _compute_capability(info: GpuInfo, model: GpuModel) -> Check:
    got = info.compute_capability
    ok = got == model.compute_capability
    return Check(
        "compute_capability",
        ok,
        f"{got}" + ("" if ok else f", but a {model.model} is {model.compute_capability}"),
    )


def _bar1(info: GpuInfo, minimum: int) -> Check:
    got = info.bar1_total_mib
    if got is None:
        return Check("bar1", False, "NVML reported no BAR1 size")
    ok = got >= minimum
    return Check(
        "bar1",
        ok,
        f"BAR1 {got} MiB" + ("" if ok else f", below the model's {minimum} MiB"),
    )


def _max_clock(got: int, model: GpuModel) -> Check:
    limit = model.max_sm_clock_mhz or 0
    ok = got <= limit * 1.05
    return Check(
        "max_sm_clock",
        ok,
        f"{got} MHz" + ("" if ok else f", above the {model.model}'s {limit} MHz"),
    )


def _identity(info: GpuInfo, previous: dict[str, Any] | None) -> Check:
    if previous is None:
        return Check("identity_stable", True, "first attestation of this UUID on this host")
    changed = [
        f"{key} {previous.get(key)!r} → {now!r}"
        for key, now in (("serial", info.serial), ("pci_device_id", info.pci_device_id))
        if previous.get(key) != now
    ]
    if changed:
        return Check(
            "identity_stable",
            False,
            "another board answers to this UUID: " + ", ".join(changed),
        )
    return Check("identity_stable", True, f"same board as on {previous.get('attested_at')}")


def identity_record(info: GpuInfo, attested_at: str) -> dict[str, Any]:
    """What the next attestation compares against (`_identity`)."""
    return {"serial": info.serial, "pci_device_id": info.pci_device_id, "attested_at": attested_at}


def duplicate_uuids(gpus: list[GpuInfo]) -> set[str]:
    """UUIDs that more than one GPU reports: a UUID is one board's, never two."""
    seen: set[str] = set()
    dupes: set[str] = set()
    for gpu in gpus:
        if gpu.uuid is None:
            continue
        (dupes if gpu.uuid in seen else seen).add(gpu.uuid)
    return dupes
