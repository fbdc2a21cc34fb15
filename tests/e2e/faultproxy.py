"""A loopback TCP proxy that breaks the network on command, for the e2e tier.

The agent talks to the coordinator through it; a test switches its mode while both run:

- `pass`: bytes flow both ways (optionally `delay_s` per chunk);
- `blackhole`: a partition that drops packets — connections stay open, nothing arrives in
  either direction, so requests hang until the client's timeout;
- `refuse`: a partition that resets — open connections are closed, new ones closed at once;
- `cut`: each response is cut off after `cut_after` bytes and the connection closed.

Runs its own asyncio loop on a daemon thread; `close()` stops it and every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from typing import Literal

Mode = Literal["pass", "blackhole", "refuse", "cut"]
CHUNK = 65536


@dataclass
class _Settings:
    mode: Mode = "pass"
    delay_s: float = 0.0
    cut_after: int = 200


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._settings = _Settings()
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        self.url = f"http://127.0.0.1:{self.port}"

    # -- control (any thread) ---------------------------------------------------------------

    def set(self, mode: Mode, *, delay_s: float = 0.0, cut_after: int = 200) -> None:
        self._settings = _Settings(mode, delay_s, cut_after)
        if mode == "refuse":
            self._loop.call_soon_threadsafe(self._close_all)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()
        self._close_all()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in list(self._writers):
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._settings.mode == "refuse":
            writer.close()
            await writer.wait_closed()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            await writer.wait_closed()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, response=False),
                self._pipe(up_reader, writer, response=True),
            )
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await w.wait_closed()
                self._writers.discard(w)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, response: bool
    ) -> None:
        sent = 0
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                data = await src.read(CHUNK)
                if not data:
                    break
                while self._settings.mode == "blackhole":  # hold it: nothing gets through
                    await asyncio.sleep(0.05)
                settings = self._settings
                if settings.mode == "refuse":
                    break
                if settings.delay_s:
                    await asyncio.sleep(settings.delay_s)
                if response and settings.mode == "cut":
                    keep = max(0, settings.cut_after - sent)
                    if keep:
                        dst.write(data[:keep])
                        await dst.drain()
                    break  # the rest never arrives: the connection closes mid-response
                dst.write(data)
                await dst.drain()
                sent += len(data)
        dst.close()
