"""The miner protocol's domain: heartbeats, desired leases and acks, long-poll wake-ups, provider
faults and the sweeper that settles what time alone ends."""
