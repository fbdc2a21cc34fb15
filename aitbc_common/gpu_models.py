"""The GPU model table (gpu_models.toml beside this file): what each model's NVML facts and
datasheet figures are. The agent checks a card against it; the coordinator judges the figures
an agent reports with it."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("gpu_models.toml")


@dataclass(frozen=True, slots=True)
class Bands:
    """How far a measurement may be from the datasheet, as fractions of it."""

    fp32_min: float
    fp32_max: float
    bandwidth_min: float
    bandwidth_max: float


@dataclass(frozen=True, slots=True)
class GpuModel:
    model: str
    names: tuple[str, ...]
    pci_device_ids: tuple[int, ...]
    memory_mib: tuple[int, int]
    compute_capability: str
    fp32_tflops: float
    memory_tbps: float
    bar1_min_mib: int | None = None
    max_sm_clock_mhz: int | None = None


@dataclass(frozen=True, slots=True)
class ModelTable:
    models: tuple[GpuModel, ...]
    bands: Bands

    def by_name(self, nvml_name: str | None) -> GpuModel | None:
        """The model NVML's name means, or None when the table lacks it."""
        for model in self.models:
            if nvml_name in model.names:
                return model
        return None

    def by_pci_device_id(self, device_id: int | None) -> GpuModel | None:
        for model in self.models:
            if device_id in model.pci_device_ids:
                return model
        return None


@functools.cache
def load(path: Path = TABLE) -> ModelTable:
    """Read the table once per process.

    Raises:
        ValueError: the file is not a valid table (a model lacks a field, a range is upside down).
    """
    doc = tomllib.loads(path.read_text())
    models = []
    for entry in doc.get("model", []):
        try:
            low, high = entry["memory_mib"]
            model = GpuModel(
                model=entry["model"],
                names=tuple(entry["names"]),
                pci_device_ids=tuple(entry["pci_device_ids"]),
                memory_mib=(int(low), int(high)),
                compute_capability=entry["compute_capability"],
                fp32_tflops=float(entry["fp32_tflops"]),
                memory_tbps=float(entry["memory_tbps"]),
                bar1_min_mib=entry.get("bar1_min_mib"),
                max_sm_clock_mhz=entry.get("max_sm_clock_mhz"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path.name}: bad model {entry.get('model')!r}: {exc}") from exc
        if low > high:
            raise ValueError(f"{path.name}: {model.model}: memory_mib range is upside down")
        models.append(model)
    return ModelTable(models=tuple(models), bands=Bands(**doc["bands"]))
