"""The TrackingId Flask extension: pick or make each request's tracking ID and echo it on every response.

The work happens in a WSGI middleware around ``app.wsgi_app`` so that the ID is set before Flask sees the
request and reaches every response, including 404, 405, 500 and responses made by error handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextvars import Token
from typing import Any

from flask import Flask
from flask.ctx import _AppCtxGlobals

from trackline import context
from trackline.appconfig import AppConfig
from trackline.body_limit import with_body_limit
from trackline.context import get_tracking_id
from trackline.policy import DEFAULTS, TrackingPolicy, rejected_fields, rejected_trace_fields
from trackline.propagation import otel
from trackline.tracecontext import parse_traceparent
from trackline.wsgi import (
    DATETIME_HEADER,
    EXPOSE_HEADERS,
    SCOPE_TOKEN_KEY,
    SERVER_LEAVES_KEY,
    TRACKING_ID_KEY,
    StartResponse,
    WsgiApp,
    echo_headers,
    header_key,
)

log = logging.getLogger("trackline.tracking")

#: ``app.extensions`` key of a Flask app's ``TrackingMiddleware``.
EXTENSION = "trackline.tracking"


class TrackingMiddleware:
    """WSGI middleware: enters the request's scope (ID, trace, policy), writes the ID to the environ and to the
    response headers, and leaves the scope when the response closes (or when the server says it will)."""

    def __init__(self, app: WsgiApp, policy: TrackingPolicy) -> None:
        self.app = app
        self.use(policy)

    def use(self, policy: TrackingPolicy) -> None:
        """Apply ``policy`` from the next request on."""
        self.policy = policy
        self.header_keys = {header: header_key(header) for header in (policy.header, *policy.aliases)}
        self.drop = {policy.header.lower(), DATETIME_HEADER.lower()}
        if policy.expose_header:
            self.drop.add(EXPOSE_HEADERS.lower())

    def response_headers(self, headers: list[tuple[str, str]], tracking_id: str) -> list[tuple[str, str]]:
        """The app's ``headers`` without those trackline sets, then the tracking header, X-DateTime and (if the
        policy says so) ``Access-Control-Expose-Headers`` naming it beside the names the app exposed itself."""
        kept, exposed, drop = [], [], self.drop
        for name, value in headers:
            lower = name.lower()
            if lower not in drop:
                kept.append((name, value))
            elif lower == _EXPOSE_LOWER:
                exposed.append(value)
        header = self.policy.header
        kept += echo_headers(header, tracking_id)
        if self.policy.expose_header:
            kept.append((EXPOSE_HEADERS, _exposing(header, exposed) if exposed else header))
        return kept

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if TRACKING_ID_KEY in environ:  # an outer TrackingMiddleware has the request (an app wrapped around a
            return self.app(environ, start_response)  # tracked Flask app): one ID, one set of headers
        incoming_trace = environ.get("HTTP_TRACEPARENT")
        trace = parse_traceparent(incoming_trace, environ.get("HTTP_TRACESTATE"))
        keys = self.header_keys
        tracking_id, rejected = self.policy.resolve(lambda header: environ.get(keys[header]), trace)
        follows_otel = otel.active()
        token = context.enter(tracking_id, trace or self.policy.start_trace(tracking_id), self.policy,
                              otel=follows_otel)
        environ[SCOPE_TOKEN_KEY] = token
        environ[TRACKING_ID_KEY] = environ[keys[self.policy.header]] = tracking_id
        notes: list[tuple[str, dict[str, Any]]] = []
        if rejected is not None:
            header, value = rejected
            notes.append((f"replaced invalid tracking ID from {header}", rejected_fields(value)))
        if incoming_trace is not None and trace is None:
            notes.append(("ignored invalid traceparent", rejected_trace_fields(incoming_trace)))
        if notes and not follows_otel:
            _log(notes)

        def start_with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if follows_otel:  # OpenTelemetry's server span runs now: the request's lines from here on are its
                if (server_span := otel.current_span()) is not None:  # (the access line's too)
                    context.follow(server_span)
                _log(notes)
            return start_response(status, self.response_headers(headers, tracking_id), exc_info)

        leave = None if environ.get(SERVER_LEAVES_KEY) else token
        try:
            response = self.app(environ, start_with_headers)
        except BaseException:
            _log(notes)
            if leave is not None:
                context.leave(leave)
            raise
        return response if leave is None else _LeaveOnClose(response, leave)


def _log(notes: list[tuple[str, dict[str, Any]]]) -> None:
    """Log (once) what the middleware noticed about a request's headers: a replaced ID, an ignored traceparent.
    With OpenTelemetry, not before its server span is current, so that they carry it."""
    while notes:
        message, fields = notes.pop(0)
        log.warning(message, extra=fields)


_EXPOSE_LOWER = EXPOSE_HEADERS.lower()


def _exposing(header: str, values: list[str]) -> str:
    """``Access-Control-Expose-Headers``: the names the app's own such headers gave, plus ``header`` if missing."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if header.lower() not in (name.lower() for name in names):
        names.append(header)
    return ", ".join(names)


class _LeaveOnClose:
    """The app's response iterable, whose ``close()`` also leaves the request's scope: for a server that does not
    leave it itself (trackline's gunicorn gets the app's iterable as it is).

    Leaner than werkzeug's ``ClosingIterator``: iterating goes straight to the wrapped iterable.
    """

    __slots__ = ("iterable", "token")

    def __init__(self, iterable: Iterable[bytes], token: Token[context.Scope | None]) -> None:
        self.iterable = iterable
        self.token: Token[context.Scope | None] | None = token

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.iterable)

    def close(self) -> None:
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                close()
        finally:
            if self.token is not None:
                token, self.token = self.token, None
                context.leave(token)


class TrackingId:
    """Flask extension: ``TrackingId(app)`` or ``ext = TrackingId(); ext.init_app(app)``.

    Config keys (defaults in ``DEFAULTS``): ``TRACKING_ID_HEADER``, ``TRACKING_ID_ALIASES``,
    ``TRACKING_ID_MAX_LENGTH``, ``TRACKING_ID_CHARACTERS`` (a regex character class body),
    ``TRACKING_ID_GENERATOR`` (a callable or its import path), ``TRACKING_ID_FROM_TRACEPARENT``
    (use a valid incoming ``traceparent``'s trace-id when no tracking header is sent),
    ``TRACKING_ID_EXPOSE_HEADER`` (name it in ``Access-Control-Expose-Headers``), ``TRACKING_ID_PROPAGATE_TO``
    (host patterns that outgoing calls send it to) and ``TRACE_SAMPLED`` (the sampled flag of a new trace).
    Every request is in a W3C trace: the caller's (a valid ``traceparent``) or a new one (docs/tracing.md).
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        middleware = TrackingMiddleware(app.wsgi_app, TrackingPolicy.from_config(app.config))
        app.wsgi_app = middleware  # type: ignore[method-assign]
        if not issubclass(app.app_ctx_globals_class, _GlobalsWithTrackingId):
            app.app_ctx_globals_class = type(  # type: ignore[assignment]
                "TrackedGlobals", (_GlobalsWithTrackingId, app.app_ctx_globals_class), {})
        app.extensions[EXTENSION] = middleware


class _GlobalsWithTrackingId(_AppCtxGlobals):
    """Mixed into a tracked app's ``g`` class: ``g.tracking_id`` (and ``g.get``, ``in g``) is the current request's
    or task's tracking ID, for code written against the blog post, unless the app set it itself. Read when
    asked, instead of copied into ``g`` by a hook before every request."""

    def __getattr__(self, name: str) -> Any:
        if name == "tracking_id":
            return get_tracking_id()
        return super().__getattr__(name)

    def get(self, name: str, default: Any = None) -> Any:
        if name == "tracking_id" and name not in self.__dict__:
            tracking_id = get_tracking_id()
            return default if tracking_id is None else tracking_id
        return super().get(name, default)

    def __contains__(self, item: str) -> bool:
        return super().__contains__(item) or (item == "tracking_id" and get_tracking_id() is not None)


def track_app(app: Any, app_config: AppConfig) -> WsgiApp:
    """Give any WSGI app trackline's tracking layer, configured by ``app_config`` (app.yaml's).

    A Flask app gets every key of its ``settings`` in its ``app.config`` (after its factory has run) and
    ``TrackingId``, unless it applied it itself: then its middleware takes the policy of the merged
    ``app.config``, so it is never wrapped twice. Any other WSGI callable is wrapped in ``TrackingMiddleware``
    with its ``policy``. Either way a ``MAX_CONTENT_LENGTH`` is
    enforced for every route (``BodyLimit``, inside the tracking layer so that its 413 carries the tracking
    headers; the envelope with ``TRACKLINE_ERROR_ENVELOPE: true``, else plain text).
    """
    settings = app_config.settings
    if not isinstance(app, Flask):
        return TrackingMiddleware(with_body_limit(app, settings.get("MAX_CONTENT_LENGTH"), app_config.error_envelope),
                                  app_config.policy)
    app.config.update(settings)
    middleware = app.extensions.get(EXTENSION)
    if middleware is None:
        TrackingId(app)
        middleware = app.extensions[EXTENSION]
    else:
        middleware.use(TrackingPolicy.from_config(app.config))
    middleware.app = with_body_limit(middleware.app, app.config.get("MAX_CONTENT_LENGTH"), app_config.error_envelope)
    return app
