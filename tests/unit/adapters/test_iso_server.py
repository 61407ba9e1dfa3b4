"""The ISO server's batch collection (group commit with a linger under load)."""

from __future__ import annotations

import threading

from paypos.adapters.iso.server import IsoServer


def _server(linger_ms: float, batch_max: int = 64, quiet: int = 1) -> IsoServer:
    server = IsoServer(lambda raws: [None] * len(raws), "127.0.0.1", 0, batch_max=batch_max, linger_ms=linger_ms)
    server.quiet_connections = quiet  # connections that could still send (none in flight)
    return server


def _job(n: int) -> tuple:
    return (bytes([n]), None, None)


def _later(server: IsoServer, jobs: list, delay_s: float) -> threading.Timer:
    timer = threading.Timer(delay_s, lambda: [server._jobs.put(job) for job in jobs])
    timer.start()
    return timer


def test_under_load_the_batch_waits_for_requests_arriving_within_the_linger():
    server = _server(linger_ms=10_000, batch_max=4)  # the batch fills long before the linger ends
    server._jobs.put(_job(2))
    timer = _later(server, [_job(3), _job(4)], 0.05)
    jobs = server.collect(_job(1), under_load=True)
    timer.join()
    assert [payload for payload, _, _ in jobs] == [b"\x01", b"\x02", b"\x03", b"\x04"]


def test_a_lone_request_never_waits():
    server = _server(linger_ms=10_000)
    timer = _later(server, [_job(2)], 0.2)
    jobs = server.collect(_job(1), under_load=False)  # returns at once, without the late one
    timer.join()
    assert [payload for payload, _, _ in jobs] == [b"\x01"]
    assert server._jobs.get_nowait() == _job(2)


def test_without_a_linger_the_batch_is_what_is_queued():
    server = _server(linger_ms=0)
    server._jobs.put(_job(2))
    timer = _later(server, [_job(3)], 0.2)
    jobs = server.collect(_job(1), under_load=True)
    timer.join()
    assert [payload for payload, _, _ in jobs] == [b"\x01", b"\x02"]


def test_the_batch_stops_at_its_size_and_keeps_the_rest_queued():
    server = _server(linger_ms=10_000, batch_max=2)
    for n in (2, 3):
        server._jobs.put(_job(n))
    assert [payload for payload, _, _ in server.collect(_job(1), under_load=True)] == [b"\x01", b"\x02"]
    assert server._jobs.get_nowait() == _job(3)


def test_a_stop_ends_the_linger_and_stays_queued_for_the_loop():
    server = _server(linger_ms=10_000)
    server._jobs.put(_job(2))
    server._jobs.put(None)
    jobs = server.collect(_job(1), under_load=True)
    assert [payload for payload, _, _ in jobs] == [b"\x01", b"\x02"]
    assert server._jobs.get_nowait() is None


def test_the_linger_ends_once_every_connection_waits_for_an_answer():
    server = _server(linger_ms=10_000, quiet=0)
    server._jobs.put(_job(2))
    timer = _later(server, [_job(3)], 0.2)
    jobs = server.collect(_job(1), under_load=True)  # nothing more can come: no waiting the linger out
    timer.join()
    assert [payload for payload, _, _ in jobs] == [b"\x01", b"\x02"]


def test_quiet_connections_count_the_open_connections_with_nothing_in_flight():
    import asyncio
    import struct

    release = threading.Event()

    def handler(raws):
        release.wait(10)  # holds the batch until the test has looked
        return [raw[::-1] for raw in raws]

    async def settled(server: IsoServer, expected: int) -> int:
        for _ in range(500):  # the event loop counts as connections open, send and get answers
            if server.quiet_connections == expected:
                break
            await asyncio.sleep(0.01)
        return server.quiet_connections

    async def scenario() -> list[int]:
        server = IsoServer(handler, "127.0.0.1", 0, linger_ms=0)
        await server.start()
        seen = []
        try:
            links = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
            seen.append(await settled(server, 3))  # 3 open, none sending
            reader, writer = links[0]
            writer.write(struct.pack(">H", 3) + b"abc")
            await writer.drain()
            seen.append(await settled(server, 2))  # one waits for its answer
            release.set()
            size = struct.unpack(">H", await reader.readexactly(2))[0]
            assert await reader.readexactly(size) == b"cba"
            seen.append(await settled(server, 3))  # answered: quiet again
            for _, link_writer in links:
                link_writer.close()
            seen.append(await settled(server, 0))  # closed
        finally:
            release.set()
            await server.close()
        return seen

    assert asyncio.run(scenario()) == [3, 2, 3, 0]
