"""Build agent/attest/attest.ptx from attest.cu with nvcc (`make ptx`); the PTX is committed.

nvcc writes the PTX ISA version of its own release (9.0 for CUDA 13), which drivers older
than that release refuse (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). The kernels use nothing newer
than PTX 7.0 (CUDA 11.0, driver R450), so the version line is lowered to that, and ptxas
checks the result assembles for Turing (sm_75) and Hopper (sm_90).

    python scripts/build_ptx.py           # rewrite attest.ptx (needs nvcc and ptxas)
    python scripts/build_ptx.py --check   # exit 1 when attest.ptx is not what attest.cu builds
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "agent" / "attest"
SOURCE = HERE / "attest.cu"
TARGET = HERE / "attest.ptx"
PTX_VERSION = "7.0"
ARCH = "compute_75"  # the oldest nvcc 13 builds for; the driver JIT-compiles it for newer cards
CHECK_ARCHES = ("sm_75", "sm_90")


def build() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "attest.ptx"
        subprocess.run(
            ["nvcc", "-ptx", f"-arch={ARCH}", "-O3", str(SOURCE), "-o", str(out)], check=True
        )
        text = out.read_text()
        text, n = re.subn(r"^\.version \d+\.\d+$", f".version {PTX_VERSION}", text, flags=re.M)
        if n != 1:
            raise SystemExit("build_ptx: nvcc's PTX has no single .version line")
        # The toolkit's build id says nothing the PTX needs and churns with every release.
        text = re.sub(r"^// Compiler Build ID: .*\n", "", text, flags=re.M)
        out.write_text(text)
        for arch in CHECK_ARCHES:
            subprocess.run(
                ["ptxas", f"-arch={arch}", str(out), "-o", str(Path(tmp) / f"{arch}.cubin")],
                check=True,
            )
        return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    if shutil.which("nvcc") is None or shutil.which("ptxas") is None:
        print("build_ptx: needs nvcc and ptxas (the CUDA toolkit) on PATH", file=sys.stderr)
        return 2
    text = build()
    if args.check:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run `make ptx`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
