"""`python -m agent` runs the `aitbc-agent` command line."""

from agent.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
