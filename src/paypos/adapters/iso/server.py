"""ISO 8583 over TCP: 2-byte big-endian length framing, many requests in flight
per connection, responses written as they complete (the terminal matches them
by fields 11 + 41).

The handler is synchronous (it runs a database transaction) and runs on a
bounded thread pool; the event loop only frames bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from paypos import limits
from paypos.protocol.iso8583 import FrameBuffer, FrameError, frame

log = logging.getLogger("paypos.iso")

Handler = Callable[[bytes], "bytes | None"]


class IsoServer:
    def __init__(self, handler: Handler, host: str, port: int, *, workers: int = limits.iso_worker_threads) -> None:
        self._handler = handler
        self._host, self._port = host, port
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="iso")
        self._server: asyncio.base_events.Server | None = None
        self._connections = asyncio.Semaphore(limits.iso_connections_max)

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self._host, self._port)
        log.info("ISO 8583 host listening on %s:%s", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._pool.shutdown(wait=True, cancel_futures=False)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self._connections.locked():
            log.warning("refusing %s: %s connections open", peer, limits.iso_connections_max)
            writer.close()
            return
        async with self._connections:
            await self._serve_connection(reader, writer)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = FrameBuffer()
        in_flight = asyncio.Semaphore(limits.iso_in_flight_per_connection_max)
        tasks: set[asyncio.Task[None]] = set()
        closing = asyncio.Event()
        try:
            while not closing.is_set():
                data = await asyncio.wait_for(reader.read(65536), timeout=limits.iso_idle_timeout_s)
                if not data:
                    break
                for payload in buffer.feed(data):
                    await in_flight.acquire()
                    task = asyncio.create_task(self._answer(payload, writer, in_flight, closing))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except (FrameError, TimeoutError, ConnectionError) as error:
            log.info("closing %s: %s", writer.get_extra_info("peername"), error)
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, payload: bytes, writer: asyncio.StreamWriter, in_flight: asyncio.Semaphore, closing: asyncio.Event
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(self._pool, self._handler, payload)
            if response is None:
                closing.set()
                writer.close()
                return
            if not writer.is_closing():
                writer.write(frame(response))
                await writer.drain()
        except Exception:
            log.exception("answering a request failed")
        finally:
            in_flight.release()
