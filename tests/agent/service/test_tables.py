"""Terminal tables fit the terminal without cutting a value: short uuids, then fewer columns."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agent.cli import _print_table

H100 = "NVIDIA H100 80GB HBM3"


def probe_doc(gpus: int = 8) -> dict[str, Any]:
    rows = []
    for i in range(gpus):
        rows.append(
            {
                "index": i,
                "name": H100,
                "uuid": f"GPU-{i:08x}-1d2e-5f60-9a8b-7c6d5e4f3a2{i}",
                "memory_used_mib": 8155.0 + i,
                "memory_total_mib": 81559,
                "utilization_pct": 97,
                "temperature_c": 71,
                "power_draw_w": 689.5,
                "health": "unhealthy" if i == 3 else "ok",
                "health_reason": "xid 79" if i == 3 else None,
                "mig_devices": [],
            }
        )
    return {"backend": "nvml", "driver_version": "550.54.15", "cuda_driver_version": "12.4",
            "gpus": rows}  # fmt: skip


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_the_probe_table_fits_and_cuts_no_value(
    columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    _print_table(probe_doc())
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= columns
    rows = [line for line in lines if re.match(r"^│ \d", line)]
    assert len(rows) == 8  # one line per GPU
    for i, row in enumerate(rows):
        assert H100 in row  # the model name whole
        assert f"{8155 + i}/81559" in row  # the memory whole, never `8155/815…`
        assert "xid 79" in row if i == 3 else "ok" in row
        assert row.count("…") <= 1  # only a shortened uuid may end in …
    if columns >= 200:
        assert "GPU-00000000-1d2e-5f60-9a8b-7c6d5e4f3a20" in out  # full uuids, every column
        assert "689 W" in out or "690 W" in out
    else:
        assert "GPU-00000000…" in out
