"""A TCP proxy in front of the real host that can lose answers (loopback only).

mode "forward": requests and answers pass; "drop_answers": requests reach the host,
answers are thrown away (the host processed the request, the terminal never hears);
"swallow": requests are read and never forwarded nor answered.
"""

from __future__ import annotations

import socket
import threading


class FaultyProxy:
    def __init__(self, upstream_port: int, mode: str = "forward") -> None:
        self.upstream_port, self.mode = upstream_port, mode
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        with client:
            try:
                header = client.recv(2)
                if len(header) < 2:
                    return
                size = int.from_bytes(header, "big")
                body = b""
                while len(body) < size:
                    body += client.recv(size - len(body))
                self.requests += 1
                if self.mode == "swallow":
                    self._stop.wait(30)
                    return
                with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as upstream:
                    upstream.sendall(header + body)
                    answer_header = upstream.recv(2)
                    answer = b""
                    answer_size = int.from_bytes(answer_header, "big")
                    while len(answer) < answer_size:
                        answer += upstream.recv(answer_size - len(answer))
                if self.mode == "forward":
                    client.sendall(answer_header + answer)
                else:  # drop_answers: hold the line open, then close without answering
                    self._stop.wait(30)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._server.close()
