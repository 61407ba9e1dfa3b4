"""Helpers for tests that run the real `paypos serve`: free ports, waiting for it to serve."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT_S = 30


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(process: subprocess.Popen, http_port: int, iso_port: int) -> None:  # type: ignore[type-arg]
    """Until /healthz answers and the ISO port accepts; fail the test if the server dies or is late."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"paypos serve exited with {process.returncode} during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=1.0).status_code == 200:
                socket.create_connection(("127.0.0.1", iso_port), timeout=1.0).close()
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"paypos serve did not answer on ports {http_port}/{iso_port} within {STARTUP_TIMEOUT_S} s")


SHUTDOWN_TIMEOUT_S = 15


@contextlib.contextmanager
def running_host(command: Sequence[str], data_dir: Path, log_path: Path,
                 env: dict[str, str] | None = None) -> Iterator[tuple[int, int]]:
    """`paypos serve` on free ports for the block: yields (iso_port, http_port); stops it after,
    and fails the test if the server logged a traceback."""
    http_port, iso_port = free_port(), free_port()
    with log_path.open("w+") as log:
        process = subprocess.Popen(
            [*command, "serve", "--http-port", str(http_port), "--iso-port", str(iso_port),
             "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
        )
        try:
            wait_until_serving(process, http_port, iso_port)
            yield iso_port, http_port
        finally:
            process.terminate()
            try:
                process.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.seek(0)
            output = log.read()
    assert "Traceback" not in output, output[-4000:]


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float, poll_s: float = 0.05) -> None:
    """Until ``condition()`` holds; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll_s)
