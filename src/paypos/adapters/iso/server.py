"""ISO 8583 over TCP: 2-byte big-endian length framing, many requests in flight
per connection, responses written as they complete (the terminal matches them
by fields 11 + 41).

The handler is synchronous (it runs a database transaction) and takes a batch:
one dispatcher thread hands it every request that arrived while the previous
batch was being answered (group commit: the batch grows with the load, and a
lone request waits for nobody); the event loop only frames bytes. Under load
(the previous batch was not alone) the dispatcher lingers a few milliseconds
for more (`limits.iso_batch_linger_ms`), until every connection has a request
in flight: a batch's statements cost the same whatever its size, so fuller
batches leave more CPU for answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from paypos import limits
from paypos.protocol.iso8583 import FrameBuffer, FrameError, frame

log = logging.getLogger("paypos.iso")

BatchHandler = Callable[[Sequence[bytes]], "list[bytes | None]"]
_Job = tuple[bytes, "asyncio.Future[bytes | None]", asyncio.AbstractEventLoop]


class IsoServer:
    def __init__(self, handler: BatchHandler, host: str, port: int, *,
                 batch_max: int = limits.iso_batch_requests_max, reuse_port: bool = False,
                 linger_ms: float = limits.iso_batch_linger_ms) -> None:
        self._handler = handler
        self._reuse_port = reuse_port  # several host processes on one port (SO_REUSEPORT)
        self._host, self._port = host, port
        self._batch_max = batch_max
        self._linger_s = max(0.0, linger_ms) / 1000
        # Open connections with no request in flight: the only ones a lingering batch can
        # still hear from (a terminal sends its next request once answered). Counted by the
        # event loop, read by the batch thread: a hint, so a stale read costs only a linger.
        self.quiet_connections = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="iso-batches", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._connections = asyncio.Semaphore(limits.iso_connections_max)

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._dispatcher.start()
        self._server = await asyncio.start_server(self._client, self._host, self._port,
                                                  reuse_port=self._reuse_port or None)
        log.info("ISO 8583 host listening on %s:%s", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._dispatcher.is_alive():
            self._jobs.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._dispatcher.join)

    def collect(self, first: _Job, *, under_load: bool) -> list[_Job]:
        """``first`` and what else is queued, up to the batch size; under load, what arrives
        within the linger too. A stop sentinel is put back: this batch is answered first."""
        jobs = [first]
        deadline = time.monotonic() + self._linger_s if under_load else 0.0
        while len(jobs) < self._batch_max:
            try:
                # Every connection waits for an answer: nothing more will come, stop lingering.
                left = deadline - time.monotonic() if self.quiet_connections > 0 else 0.0
                more = self._jobs.get(timeout=left) if left > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._jobs.put(None)  # finish this batch, then stop
                break
            jobs.append(more)
        return jobs

    def _dispatch(self) -> None:
        """The batch loop: take what is queued (waiting for at least one), answer it, repeat."""
        previous = 0
        while True:
            job = self._jobs.get()
            if job is None:
                return
            jobs = self.collect(job, under_load=previous > 1)
            previous = len(jobs)
            try:
                answers: list[bytes | None] | Exception = self._handler([payload for payload, _, _ in jobs])
            except Exception as error:  # the handler answers 96 itself; this is a last resort
                log.exception("batch handler failed")
                answers = error
            # One wake-up of each event loop per batch, not per answer (each is a write to
            # the loop's self-pipe and a GIL hand-over).
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bytes | None], bytes | None]]] = {}
            for index, (_, future, loop) in enumerate(jobs):
                by_loop.setdefault(loop, []).append((future, None if isinstance(answers, Exception) else answers[index]))
            for loop, settled in by_loop.items():
                loop.call_soon_threadsafe(_settle, settled, answers if isinstance(answers, Exception) else None)

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

        def answered(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not tasks:
                self.quiet_connections += 1

        self.quiet_connections += 1
        try:
            while not closing.is_set():
                data = await asyncio.wait_for(reader.read(65536), timeout=limits.iso_idle_timeout_s)
                if not data:
                    break
                for payload in buffer.feed(data):
                    await in_flight.acquire()
                    if not tasks:
                        self.quiet_connections -= 1
                    task = asyncio.create_task(self._answer(payload, writer, in_flight, closing))
                    tasks.add(task)
                    task.add_done_callback(answered)
        except (FrameError, TimeoutError, ConnectionError) as error:
            log.info("closing %s: %s", writer.get_extra_info("peername"), error)
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self.quiet_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, payload: bytes, writer: asyncio.StreamWriter, in_flight: asyncio.Semaphore, closing: asyncio.Event
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[bytes | None] = loop.create_future()
            self._jobs.put((payload, future, loop))
            response = await future
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


def _settle(settled: list[tuple[asyncio.Future[bytes | None], bytes | None]], error: Exception | None) -> None:
    for future, answer in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(answer)
