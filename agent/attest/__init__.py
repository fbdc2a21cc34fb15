"""Proof of hardware: show that each GPU is the model it claims to be (docs/attestation.md).

`checks` compares NVML's facts with the model table (aitbc_common/gpu_models.toml);
`selftest` runs the challenge and response through the CUDA driver API (fill, read back at
positions chosen after the fill, FMA and copy timings); `host` puts both together per GPU.
Imports the GPU layer and the settings, nothing above them.
"""
