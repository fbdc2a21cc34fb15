"""The running daemon: wiring and threads, the heartbeat job, systemd notify, status and metrics."""
