"""The request guard: what every request must be before any route, parser or key lookup sees it.

One pure-ASGI middleware, so the checks hold for every route at one place and cost nothing
per route:

- **Body size.** A body longer than `max_body_bytes` (1 MiB by default) is answered 413 — from
  `Content-Length` before a byte is read, or as soon as a streamed body passes the limit — so an
  anonymous 300 MB upload costs neither memory nor the time to read it, and never reaches JSON
  parsing or the API-key lookup.
- **Slow bodies.** A body that has not arrived within `body_timeout_s` (30 s) is answered 408
  (headers have their deadline in `routes.slow_clients`).
- **Text the database cannot hold.** A JSON string with a lone surrogate (`"\\ud800"`) or a NUL
  character (`"\\u0000"`), or a NUL in the query string, is answered 422. Neither database can
  store them (the drivers raise), and echoing them back would fail to encode: before this guard
  they were 500s. Bodies are only decoded here when they hold a `\\u` escape at all, which
  agents' heartbeats do not, so the common request pays one byte scan.

The body is buffered (up to the limit) and replayed to the app unchanged. `validation_errors`
is the other half: a 422 names what was wrong and echoes at most a short prefix of the input, so
a 200 kB description is not sent back whole.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")
_QUERY_NUL = re.compile(rb"%00", re.IGNORECASE)


def _unstorable(value: Any) -> bool:
    """True when a decoded JSON value holds a lone surrogate or NUL in any string or key."""
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the rest of an oversized body is not read
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Refuse oversized bodies (413) and unstorable text (422) before the app runs."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _QUERY_NUL.search(scope.get("query_string", b"")):
            await _answer(send, 422, "the query string holds a NUL character")
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _answer(send, 400, "Content-Length is not a number")
                    return
                if declared > self.max_body_bytes:
                    await _answer(send, 413, self._too_large())
                    return
        body = bytearray()
        tail: Message | None = None  # a disconnect met while reading, replayed after the body
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(
                    receive(), deadline - asyncio.get_running_loop().time()
                )
            except TimeoutError:
                await _answer(send, 408, f"the request body took over {self.body_timeout_s:g} s")
                return
            if message["type"] != "http.request":
                tail = message
                break
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _answer(send, 413, self._too_large())
                return
            if not message.get("more_body", False):
                break
        if b"\\u" in body:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None  # not JSON: the route's own parsing answers it
            if _unstorable(decoded):
                await _answer(
                    send, 422, "a string in the body holds a lone surrogate or a NUL character"
                )
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed, tail
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            if tail is not None:
                message, tail = tail, None
                return message
            return await receive()

        await self.app(scope, replay, send)


ECHO_CHARS = 64  # how much of a rejected value a 422 repeats


def _short(value: Any) -> Any:
    """A rejected input as a 422 may echo it: short strings and scalars as they are, the rest
    cut to a prefix or summarised."""
    if isinstance(value, str):
        return value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + "…"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        if len(text) <= ECHO_CHARS:
            return value
        kind = "object" if isinstance(value, dict) else "array"
        return f"({kind} of {len(value)} entries, {len(text)} characters)"
    return value


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's 422 `detail` list, with each echoed `input` shortened (and `ctx` as text)."""
    out = []
    for error in errors:
        item = {k: v for k, v in dict(error).items() if k not in ("input", "ctx", "url")}
        if "input" in error:
            item["input"] = _short(error["input"])
        if error.get("ctx"):
            item["ctx"] = {k: _short(str(v)) for k, v in error["ctx"].items()}
        out.append(item)
    return out
