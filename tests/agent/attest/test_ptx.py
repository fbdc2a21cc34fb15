"""The committed attest.ptx: what attest.cu builds, loadable by drivers older than the toolkit."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from agent.attest.selftest import kernels
from tests.support import REPO


def test_the_ptx_ships_both_kernels_at_an_old_isa() -> None:
    ptx = kernels().decode()
    assert re.search(r"^\.version 7\.0$", ptx, re.M)  # CUDA 11.0 / R450 and newer load it
    assert re.search(r"^\.target sm_75$", ptx, re.M)
    assert ".visible .entry aitbc_fill(" in ptx
    assert ".visible .entry aitbc_fma(" in ptx
    assert ptx.count("fma.rn.f32") >= 8 * 16  # the unrolled FMA chains survived -O3


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="the CUDA toolkit is not installed")
def test_the_ptx_is_what_attest_cu_builds() -> None:
    check = subprocess.run(
        [sys.executable, "scripts/build_ptx.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
