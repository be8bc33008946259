"""HTTP clients for tests: a request through urllib (``request``), and raw bytes over a socket (``raw_request``,
``raw_exchange``) for what urllib would refuse to send: hostile header bytes, half requests, keep-alive."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 10.0) -> Response:
    """``method url`` through urllib; an error status is a Response too."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, dict(err.headers), err.read())


@dataclass(frozen=True)
class RawResponse:
    status: int
    fields: tuple[tuple[str, str], ...]  # every header line as sent, in order, names as sent
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        """The header fields by name (a repeated one: its last value)."""
        return dict(self.fields)

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (any case), in order."""
        return [value for field, value in self.fields if field.lower() == name.lower()]

    @property
    def tracking_ids(self) -> list[str]:
        """Every X-Tracking-ID header of the response (one, if right)."""
        return self.values("X-Tracking-ID")

    @property
    def tracking_id(self) -> str:
        [tracking_id] = self.tracking_ids
        return tracking_id


def raw_exchange(sock: socket.socket, request: bytes) -> RawResponse:
    """Send ``request`` bytes as they are and read one response (to its Content-Length, else to EOF)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1.1 "), data[:200]
    fields = tuple((name, value) for name, value in (line.split(": ", 1) for line in header_lines))
    length = int(next((value for name, value in fields if name.lower() == "content-length"), -1))
    while (length < 0 or len(body) < length) and (chunk := sock.recv(65536)):
        body += chunk
    return RawResponse(int(status_line.split()[1]), fields, body)


def raw_request(port: int, request: bytes, timeout: float = 10.0) -> RawResponse:
    """``request`` bytes sent as they are to 127.0.0.1:``port`` on a connection of its own; one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return raw_exchange(sock, request)
