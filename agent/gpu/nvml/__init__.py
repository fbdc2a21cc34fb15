"""NVML, the real GPUs: the only package that imports `pynvml`.

`backend.py` is the `GpuBackend`; `session.py` the choke point every call goes through;
`facts.py`, `samples.py` and `events.py` what is read (fingerprints, live readings, Xid events).
"""

from agent.gpu.nvml.backend import NvmlBackend
from agent.gpu.nvml.session import BINDING_PROBLEM

__all__ = ["BINDING_PROBLEM", "NvmlBackend"]
