"""A Sentry for one test: an HTTP server on 127.0.0.1 that keeps the envelopes sentry-sdk POSTs to its DSN."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Items = list[tuple[dict[str, Any], Any]]


class Inbox:
    """An HTTP server on 127.0.0.1 that keeps the envelopes POSTed to it (its ``dsn``)."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/api/1/envelope/":
                    inbox.envelopes.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def items(self, kind: str) -> Items:
        """``(envelope header, payload)`` of every item of type ``kind`` received so far."""
        found = []
        for envelope in self.envelopes:
            header_line, _, rest = envelope.partition(b"\n")
            header = json.loads(header_line)
            while rest.strip():
                item_line, _, rest = rest.partition(b"\n")
                item = json.loads(item_line)
                if "length" in item:
                    payload, rest = rest[:item["length"]], rest[item["length"] + 1:]
                else:
                    payload, _, rest = rest.partition(b"\n")
                if item["type"] == kind:
                    found.append((header, json.loads(payload)))
        return found

    def events(self) -> list[dict[str, Any]]:
        """The events received so far (a sender in this process flushes its client first)."""
        return [payload for _, payload in self.items("event")]

    def tagged(self, tracking_id: str) -> list[dict[str, Any]]:
        """The events received so far tagged with ``tracking_id``."""
        return [event for event in self.events() if event.get("tags", {}).get("tracking_id") == tracking_id]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
