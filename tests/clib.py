"""Compile the tests' fake driver libraries (fake libnvidia-ml.so.1, fake libcuda.so.1) with `cc`.

Each build goes to <build_root>/<key>/<library name>, where key hashes the source and the
flags: the compile runs once per variant and source change. A build is atomic (a temp file
renamed into place), so parallel test processes may race for it safely.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

FLAGS = ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"]


class CompilerMissingError(RuntimeError):
    """No C compiler: the tests that need a fake driver library cannot run."""


def build_shared(source: Path, library_name: str, flags: Sequence[str], build_root: Path) -> Path:
    """The directory holding `library_name` built from `source` with `flags`."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise CompilerMissingError(f"building {library_name} needs a C compiler (`cc`) on PATH")
    all_flags = [*FLAGS, *flags]
    key = hashlib.sha256(source.read_bytes() + "\0".join(all_flags).encode()).hexdigest()[:16]
    out_dir = build_root / key
    lib = out_dir / library_name
    if lib.exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run(
            [cc, *all_flags, "-o", tmp, str(source), "-lpthread"],
            check=True,
            capture_output=True,
            text=True,
        )
        os.replace(tmp, lib)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"compiling {source.name} failed:\n{exc.stderr}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out_dir
