"""Logging of both programs: structlog JSON lines on stderr (console style on a TTY).

stdout stays command output. Records of the standard `logging` module (the agent's `gpu/`
layer, uvicorn, SQLAlchemy, the coordinator's own modules) go through the same renderer, their
`extra=` fields as keys, so every line on stderr has one format and `journalctl -o cat | jq`
reads them all. Event names are snake_case past tense with context in keys:
`log.info("lease_started", booking_id=...)`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure_logging(
    level: str = "info", *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Send structlog and stdlib logging to `stream` (stderr) as JSON lines or console text.

    Args:
        level: minimum level name.
        json: force JSON (True) or console (False); None picks console only on a TTY.
        stream: where lines go; default `sys.stderr` at call time.
    """
    out = stream if stream is not None else sys.stderr
    use_json = json if json is not None else not out.isatty()
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler: logging.Handler = (
        logging.StreamHandler(out) if stream is not None else _CurrentStderrHandler()
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_color_message],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_aitbc_log", False):
            root.removeHandler(old)
    handler._aitbc_log = True  # type: ignore[attr-defined]  # marks our handler for reconfigure
    root.addHandler(handler)
    root.setLevel(numeric)


def _drop_color_message(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """uvicorn adds an ANSI-coloured copy of each message as `color_message`: not for a log."""
    event.pop("color_message", None)
    return event


class _CurrentStderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record is emitted, not when it was configured:
    a test runner (or an embedding program) may swap and close the stream it had earlier."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def get_logger(name: str | None = None) -> Any:
    """A structlog logger (bound lazily, so it follows later `configure_logging` calls)."""
    return structlog.get_logger(name)
