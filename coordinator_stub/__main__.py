"""`python -m coordinator_stub` → the `aitbc-coordinator` command."""

from coordinator_stub.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
