"""The AITBC coordinator: GPU marketplace, miner protocol, staking and ledger (docs/api.md)."""

__version__ = "0.2.0"
