"""The AITBC miner agent: reads GPUs through NVML, registers them, heartbeats, runs leases.

Nothing happens at import: `cli.main()` builds settings, logging and backends.
"""

__version__ = "0.2.0"
