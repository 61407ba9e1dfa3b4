"""Helpers for tests that run the real `paypos serve`: free ports, waiting for it to serve."""

from __future__ import annotations

import socket
import subprocess
import time

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
