"""A connection that will not finish its request headers is closed: uvicorn's protocol, plus a
deadline.

uvicorn times out idle keep-alive connections but not a client that trickles its headers (one
line every few seconds, forever): twenty thousand of those exhaust the file descriptors and the
server refuses everyone. `HeaderDeadlineProtocol` arms a deadline when a connection opens and
when each new request on it begins, disarms it when the headers are complete, and closes the
connection when it fires. The body has its own deadline in `routes.guard`.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("coordinator.http")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on each request's headers."""

    header_timeout_s: float = 10.0  # set per server by `with_header_timeout`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if getattr(self, "_header_deadline", None) is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        deadline = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            peer = self.transport.get_extra_info("peername")
            log.info(
                "slow_headers_closed",
                extra={"header_timeout_s": self.header_timeout_s, "client": peer and peer[0]},
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        self._arm()  # a new request on a kept-alive connection
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def with_header_timeout(timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class to hand uvicorn (`Config(http=...)`) for this deadline."""
    return type(
        "HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": timeout_s}
    )
