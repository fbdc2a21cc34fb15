"""The AITBC coordinator: GPU marketplace, miner protocol, staking and ledger (SPEC §2 to §3)."""
