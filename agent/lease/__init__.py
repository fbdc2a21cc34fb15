"""Leases on the host: pure reconciliation, the worker thread, the long poll, acks, hooks and the
atomic state file that makes every hook run at most once."""
