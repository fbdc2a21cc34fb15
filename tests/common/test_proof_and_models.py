"""aitbc_common: the proof-of-memory sequence and the GPU model table."""

from __future__ import annotations

from pathlib import Path

import pytest

from aitbc_common import gpu_models, proof


def test_the_fill_is_splitmix64() -> None:
    # The reference SplitMix64 started at 0 yields 0xE220A8397B1DCDAF first.
    assert proof.word(0, 0) == 0xE220A8397B1DCDAF
    assert proof.word(0, 1) != proof.word(0, 0)
    assert proof.word(1, 0) != proof.word(0, 0)
    assert all(0 <= proof.word(0xFFFFFFFFFFFFFFFF, i) < 2**64 for i in range(100))


def test_positions_are_distinct_in_range_and_reach_the_end() -> None:
    words = 10_000_000_000  # 80 GB of words
    positions = proof.choose_positions(words, 64)
    assert len(set(positions)) == 64
    assert all(0 <= p < words for p in positions)
    assert max(positions) >= words * 63 // 64  # the last slice is always probed
    assert proof.choose_positions(5, 64) == sorted(proof.choose_positions(5, 64))
    assert len(proof.choose_positions(5, 64)) == 5
    assert proof.choose_positions(0, 64) == []


def test_the_table_knows_the_datacenter_cards() -> None:
    table = gpu_models.load()
    h100 = table.by_name("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    assert h100.pci_device_ids == (0x2330,)
    assert table.by_pci_device_id(0x2335) == table.by_name("NVIDIA H200")
    assert table.by_name("NVIDIA Mystery 9000") is None
    names = [n for m in table.models for n in m.names]
    assert len(names) == len(set(names))  # a name means one model
    ids = [i for m in table.models for i in m.pci_device_ids]
    assert len(ids) == len(set(ids))
    assert 0 < table.bands.fp32_min < 1 < table.bands.fp32_max


def test_a_broken_table_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text(
        "[bands]\nfp32_min=0.5\nfp32_max=1.3\nbandwidth_min=0.4\nbandwidth_max=1.1\n"
        '[[model]]\nmodel = "X"\nnames = ["X"]\npci_device_ids = [1]\nmemory_mib = [2, 1]\n'
        'compute_capability = "9.0"\nfp32_tflops = 1\nmemory_tbps = 1\n'
    )
    with pytest.raises(ValueError, match="upside down"):
        gpu_models.load(bad)
