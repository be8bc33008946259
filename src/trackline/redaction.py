"""Secrets kept out of log lines: the values of listed query parameters and headers become ``[REDACTED]``.

app.yaml's ``TRACKLINE_REDACT_QUERY`` and ``TRACKLINE_REDACT_HEADERS`` (docs/redaction.md) make a ``Redactor``
once per process; the access logger applies it to ``query_string``, ``request_path``, ``referer`` and the
message, and ``TrackingIdFilter`` to the ``extra`` fields of every other line (named like a listed parameter
or header, or like a URL: ``url``, ``path``, ``query_string``, ..., or ``headers``). What an app writes into a
message's text is not looked at. No Flask import: the logging classes load in gunicorn's master.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

#: What a redacted value is logged as.
MARKER = "[REDACTED]"

#: app.yaml's defaults (``TRACKLINE_REDACT_QUERY``, ``TRACKLINE_REDACT_HEADERS``). nginx/trackline.conf lists the
#: same query parameters (tests/unit/test_redaction.py compares them).
DEFAULT_QUERY = ("token", "access_token", "api_key", "apikey", "password", "secret", "signature", "code")
DEFAULT_HEADERS = ("Authorization", "Cookie", "Set-Cookie", "X-Api-Key")

#: ``extra`` fields whose (string) value is a URL, a path or a query string: its listed parameters are redacted.
URL_FIELDS = frozenset({"url", "uri", "request_uri", "raw_uri", "request_url", "full_path", "path", "request_path",
                        "query_string", "query", "referer", "referrer", "location", "href", "next"})
#: ``extra`` fields holding headers (a mapping, or a list of name-value pairs): listed headers' values are redacted.
HEADER_FIELDS = frozenset({"headers", "request_headers", "response_headers"})
#: Headers whose value is a URL.
_URL_HEADERS = frozenset({"referer", "location", "content-location"})
#: Fields holding only a query string (no ``?`` before it).
_QUERY_ONLY = frozenset({"query_string", "query"})


def _spellings(name: str) -> set[str]:
    """The ways an ``extra`` key may spell ``name``: as given, lower or upper case, with ``-`` or ``_``."""
    forms = {name, name.lower(), name.upper()}
    return forms | {form.replace("-", "_") for form in forms}


class Redactor:
    """The parameters (case-insensitive, percent-decoded) and headers (case-insensitive) whose values are
    never logged. Built once per process; each method returns its input itself when there is nothing to redact.
    """

    __slots__ = ("_hint", "_secret_fields", "field_names", "header_names", "query_names")

    def __init__(self, query: Iterable[str] = DEFAULT_QUERY, headers: Iterable[str] = DEFAULT_HEADERS) -> None:
        self.query_names = frozenset(name.lower() for name in query)
        self.header_names = frozenset(name.lower() for name in headers)
        secrets = set()
        for name in (*self.query_names, *headers):
            secrets |= _spellings(name)
        self._secret_fields = frozenset(secrets)
        urls = set()
        for name in (*URL_FIELDS, *HEADER_FIELDS):
            urls |= _spellings(name)
        #: Every record attribute this redactor may change (the filter intersects a record's keys with it).
        self.field_names = self._secret_fields | urls
        names = "|".join(re.escape(name) for name in sorted(self.query_names, key=len, reverse=True))
        # A query that may hold a listed parameter: one of the names at a parameter's start, or any percent
        # escape (an encoded name is compared decoded). Most queries fail this search and are returned as they are.
        self._hint = re.compile(rf"(?:^|&)(?:{names})=|%", re.IGNORECASE).search if names else None

    def query(self, query: str) -> str:
        """``query`` (``a=1&token=x``) with each listed parameter's non-empty value replaced, the rest unchanged."""
        if not query or self._hint is None or not self._hint(query):
            return query
        parts = query.split("&")
        changed = False
        for index, part in enumerate(parts):
            name, _, value = part.partition("=")
            if value and self._listed(name):
                parts[index] = f"{name}={MARKER}"
                changed = True
        return "&".join(parts) if changed else query

    def _listed(self, name: str) -> bool:
        return (unquote_plus(name) if "%" in name else name).lower() in self.query_names

    def url(self, url: str) -> str:
        """A URL or path with the query after its first ``?`` (up to a ``#``) redacted as ``query`` does."""
        if "?" not in url:
            return url
        head, _, rest = url.partition("?")
        query, hash_, fragment = rest.partition("#")
        redacted = self.query(query)
        return url if redacted is query else f"{head}?{redacted}{hash_}{fragment}"

    def headers(self, headers: Any) -> Any:
        """A copy of ``headers`` (a mapping, or name-value pairs) with the listed headers' values replaced and the
        URL in a ``Referer`` or ``Location`` redacted; ``headers`` itself when nothing changes."""
        if isinstance(headers, Mapping):
            pairs = list(headers.items())
        elif isinstance(headers, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in headers):
            pairs = [(name, value) for name, value in headers]
        else:
            return headers
        redacted = [(name, self._header(str(name).lower(), value)) for name, value in pairs]
        if all(new is old for (_, new), (_, old) in zip(redacted, pairs, strict=True)):
            return headers
        return dict(redacted) if isinstance(headers, Mapping) else redacted

    def _header(self, name: str, value: Any) -> Any:
        if name in self.header_names:
            return MARKER
        return self.url(value) if name in _URL_HEADERS and isinstance(value, str) else value

    def field(self, name: str, value: Any) -> Any:
        """The value an ``extra`` field ``name`` is logged with."""
        if value is None or value == "":
            return value
        if name in self._secret_fields:
            return MARKER
        key = name.lower().replace("-", "_")
        if key in HEADER_FIELDS:
            return self.headers(value)
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if not isinstance(text, str):
            return value
        redacted = self.query(text) if key in _QUERY_ONLY and "?" not in text else self.url(text)
        return value if redacted is text else redacted

    def args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """A record's ``%`` arguments with each string holding a ``?`` redacted as a URL (gunicorn's ``Error
        handling request /path?query``, an app's ``log.info("calling %s", url)``)."""
        if not any(isinstance(arg, str) and "?" in arg for arg in args):
            return args
        return tuple(self.url(arg) if isinstance(arg, str) else arg for arg in args)

    def record(self, attributes: dict[str, Any]) -> None:
        """Redact a log record's ``__dict__`` in place (its fields named like secrets, URLs or headers)."""
        for name in attributes.keys() & self.field_names:
            value = attributes[name]
            redacted = self.field(name, value)
            if redacted is not value:
                attributes[name] = redacted


_active = Redactor()


def active() -> Redactor:
    """The process's redactor: the defaults until ``configure`` (``trackline serve`` calls it from app.yaml)."""
    return _active


def configure(redactor: Redactor) -> None:
    """Make ``redactor`` the process's (a served app's workers inherit the master's, set before they fork)."""
    global _active
    _active = redactor
