"""The terminal's link to the host: ISO 8583 over TCP with a 2-byte length prefix.

It tells the two failures apart that the terminal must handle differently:
`HostUnreachable` (nothing was sent: the sale may go offline) and `NoAnswer`
(sent, no answer in time: the sale must be reversed).
"""

from __future__ import annotations

import socket
import struct

from paypos import limits
from paypos.protocol import iso8583


class HostUnreachable(ConnectionError):
    """The request was not sent: the host could not be reached."""


class NoAnswer(TimeoutError):
    """The request was sent and no answer came within the response timeout."""


class HostLink:
    def __init__(self, host: str, port: int, *, timeout_s: float = limits.terminal_response_timeout_s) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s

    def exchange(self, raw: bytes) -> dict[str, str]:
        """Send one request on a fresh connection and read its answer."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=limits.terminal_connect_timeout_s)
        except OSError as error:
            raise HostUnreachable(f"host {self.host}:{self.port} unreachable: {error}") from None
        try:
            sock.settimeout(self.timeout_s)
            try:
                sock.sendall(iso8583.frame(raw))
            except OSError as error:
                raise HostUnreachable(f"sending to {self.host}:{self.port} failed: {error}") from None
            try:
                size = struct.unpack(">H", _read(sock, 2))[0]
                return iso8583.decode_message(_read(sock, size))
            except (OSError, ConnectionError) as error:
                raise NoAnswer(f"no answer from {self.host}:{self.port} within {self.timeout_s} s: {error}") from None
        finally:
            sock.close()


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed before the answer")
        data += chunk
    return data
