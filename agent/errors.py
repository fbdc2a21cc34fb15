"""The agent's error tree; `cli.main` maps it to exit codes.

The GPU layer has a tree of its own (`agent.gpu.errors`: `GpuError` → `GpuAccessError`, exit
69), since `agent/gpu/` imports nothing else of the agent; `cli.main` maps both trees.

```
AgentError                          exit 1 unless a subclass says otherwise
├── ConfigError                     exit 78 (EX_CONFIG): bad or unknown key, unreadable file
├── CoordinatorUnavailableError     transport error, timeout or 5xx: retry later with backoff
├── CoordinatorRejectedError        4xx: the coordinator said no; do not retry blindly
└── StateError                      exit 74 (EX_IOERR): the state file cannot be read or written
```

A value a GPU cannot report is `None`, never an exception; these errors are for whole-agent
conditions only.
"""

from __future__ import annotations

EX_OK = 0
EX_SOFTWARE = 70
EX_IOERR = 74
EX_CONFIG = 78


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    exit_code: int = 1


class ConfigError(AgentError):
    """The configuration file or environment is invalid; the message names the key."""

    exit_code = EX_CONFIG


class CoordinatorUnavailableError(AgentError):
    """The coordinator could not be reached or failed (transport, timeout, 5xx): retry later."""


class CoordinatorRejectedError(AgentError):
    """The coordinator refused a request (4xx); retrying the same request will not help.

    Attributes:
        status_code: the HTTP status the coordinator answered with.
        detail: the coordinator's `detail` sentence, when it sent one.
        retry_after_s: the coordinator's `Retry-After` in seconds (a 429), when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        detail: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
        self.retry_after_s = retry_after_s


class StateError(AgentError):
    """The state file cannot be read, parsed or written (full or read-only disk, damage)."""

    exit_code = EX_IOERR
