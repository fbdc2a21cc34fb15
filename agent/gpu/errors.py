"""The GPU layer's own error tree (it imports nothing else of the agent).

```
GpuError                            root of what agent/gpu raises on purpose
└── GpuAccessError                  exit 69 (EX_UNAVAILABLE): NVML cannot be used at all
    ├── NvmlLibraryNotFoundError    libnvidia-ml.so.1 is not installed / not on the loader path
    ├── NvmlDriverMismatchError     nvmlInit: LIB_RM_VERSION_MISMATCH (driver upgraded, no reboot)
    └── NvmlBindingError            the `pynvml` module is not the official nvidia-ml-py binding
```

A value a GPU cannot report is `None`, and one failing GPU is that GPU's health (`lost`,
`unhealthy`), never an exception: these errors are for "no GPU can be read at all". Each
carries the process exit code `aitbc-agent` ends with (`agent.cli.main` reads `exit_code`).
"""

from __future__ import annotations

EX_UNAVAILABLE = 69  # sysexits.h: a service the command needs is unavailable


class GpuError(Exception):
    """Root of every error the GPU layer raises on purpose."""

    exit_code: int = 1


class GpuAccessError(GpuError):
    """The GPUs cannot be read at all (as opposed to one field or one GPU)."""

    exit_code = EX_UNAVAILABLE


class NvmlLibraryNotFoundError(GpuAccessError):
    """`libnvidia-ml.so.1` could not be loaded (no NVIDIA driver, or not on the loader path)."""


class NvmlDriverMismatchError(GpuAccessError):
    """The kernel driver and the user-space NVML library differ (reboot after an upgrade)."""


class NvmlBindingError(GpuAccessError):
    """The importable `pynvml` is not the official `nvidia-ml-py` binding."""
