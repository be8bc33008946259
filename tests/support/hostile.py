"""The hostile corpus: raw header values and queries that the app (tests/integration/test_hostile_input.py) and
the edge in front of it (test_edge.py) must answer and log as valid JSON, each case sent as raw bytes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    """Raw header values (and query) for ``GET /api/names``; ``rejected`` is gunicorn's own answer, if any."""

    name: str
    headers: dict[str, bytes] = field(default_factory=dict)
    query: bytes = b"case=plain"
    rejected: tuple[int, str] | None = None  # (status, detail of gunicorn's "Invalid request" warning)
    parsed: bool = False  # gunicorn got as far as a request: its access line has the request's fields

    def request(self) -> bytes:
        lines = [b"GET /api/names?" + self.query + b" HTTP/1.1", b"Host: hostile.test", b"Connection: close"]
        lines += [name.encode() + b": " + value for name, value in self.headers.items()]
        return b"\r\n".join(lines) + b"\r\n\r\n"


HOSTILE_IDS = {
    "tab": b"abc\tdef",
    "backslash": b"abc\\def",
    "quotes": b'say "hi"',
    "8kb": b"a" * 8000,  # under gunicorn's 8190-byte field limit: the app sees it
    "utf8": "café 日本".encode(),
    "latin1": b"caf\xe9",
    "cr-looking": b"abc\\r\\nX-Injected: 1",
    "json-looking": b'{"tracking_id": null}',
}
ANSWERED = [Case(f"id-{name}", {"X-Tracking-ID": value}) for name, value in HOSTILE_IDS.items()] + [
    Case("user-agent", {"User-Agent": b'Mozilla "x" \\ \t caf\xc3\xa9 \\r\\n {"a": 1}'}),
    Case("user-agent-8kb", {"User-Agent": b"U" * 8000}),
    Case("referer", {"Referer": b'http://x.test/?q="\\"\tcaf\xe9'}),
    Case("query", query=b'q="a\\b"{}%0d%0a%00&x=%22'),
    Case("everything", {"X-Tracking-ID": b'a\t"\\\xe9', "User-Agent": b'ua\t"\\', "Referer": b"ref\t\xff"},
         query=b'q="\\'),
]
HEADER_400 = (400, "Invalid HTTP Header: '{}'")
REJECTED = [
    Case("id-control", {"X-Tracking-ID": b"a\x01b"}, rejected=HEADER_400),
    Case("id-nul", {"X-Tracking-ID": b"a\x00b"}, rejected=HEADER_400),
    Case("id-lone-cr", {"X-Tracking-ID": b"a\rX-Injected: 1"}, rejected=HEADER_400),
    Case("id-9kb", {"X-Tracking-ID": b"a" * 9000}, rejected=(431, "limit request headers fields size")),
    Case("user-agent-escape", {"User-Agent": b"a\x1b[31mred"}, rejected=HEADER_400),
    Case("referer-del", {"Referer": b"a\x7fb"}, rejected=HEADER_400),
    Case("query-non-ascii", query=b"q=caf\xe9", rejected=(400, "Invalid HTTP request line: 'GET /api/names?q=caf\xe9")),
    Case("double-chunked", {"Transfer-Encoding": b"chunked, chunked"}, rejected=HEADER_400, parsed=True),
    Case("line-5kb", query=b"q=" + b"a" * 5000, rejected=(414, "Request Line is too large (5026 > 4094)")),
]

