"""The TrackingId Flask extension: pick or make each request's tracking ID and echo it on every response.

The work happens in a WSGI middleware around ``app.wsgi_app`` so that the ID is set before Flask sees the
request and reaches every response, including 404, 405, 500 and responses made by error handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from flask import Flask, g

from trackline import propagation
from trackline.body_limit import limited
from trackline.context import ENVIRON_KEY, get_tracking_id, response_done, set_tracking_id
from trackline.headers import DATETIME_HEADER, EXPOSE_HEADERS, echo_headers
from trackline.policy import DEFAULTS, TrackingPolicy, environ_key, rejected_fields
from trackline.tracecontext import parse_traceparent, set_trace

log = logging.getLogger("trackline.tracking")

#: ``app.extensions`` key of a Flask app's ``TrackingMiddleware``.
EXTENSION = "trackline.tracking"


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class TrackingMiddleware:
    """WSGI middleware: sets the ID for the request, writes it to the environ and to the response headers."""

    def __init__(self, app: WsgiApp, policy: TrackingPolicy) -> None:
        self.app = app
        self.use(policy)

    def use(self, policy: TrackingPolicy) -> None:
        """Apply ``policy`` from the next request on."""
        self.policy = policy
        self.environ_key = environ_key(policy.header)
        self.drop = {policy.header.lower(), DATETIME_HEADER.lower()}
        if policy.expose_header:
            self.drop.add(EXPOSE_HEADERS.lower())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if ENVIRON_KEY in environ:  # an outer TrackingMiddleware has the request (an app wrapped around a tracked
            return self.app(environ, start_response)  # Flask app): one ID, one set of headers
        incoming_trace = environ.get("HTTP_TRACEPARENT")
        trace = parse_traceparent(incoming_trace, environ.get("HTTP_TRACESTATE"))
        tracking_id, rejected = self.policy.resolve(environ, trace)
        set_trace(trace or self.policy.start_trace(tracking_id))
        set_tracking_id(tracking_id)
        propagation.use_policy(self.policy)
        environ[ENVIRON_KEY] = environ[self.environ_key] = tracking_id
        if rejected is not None:
            header, value = rejected
            log.warning("replaced invalid tracking ID from %s", header, extra=rejected_fields(value))
        if incoming_trace is not None and trace is None:
            log.warning("ignored invalid traceparent", extra={"rejected_length": len(incoming_trace)})

        def start_with_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(name, value) for name, value in headers if name.lower() not in self.drop]
            kept.extend(echo_headers(self.policy.header, tracking_id))
            if self.policy.expose_header:
                kept.append((EXPOSE_HEADERS, _exposing(self.policy.header, headers)))
            return start_response(status, kept, exc_info)

        try:
            return _LeaveOnClose(self.app(environ, start_with_headers))
        except BaseException:
            response_done()
            raise


def _exposing(header: str, headers: list[tuple[str, str]]) -> str:
    """``Access-Control-Expose-Headers``: the names the app's own such headers gave, plus ``header`` if missing."""
    names = [name.strip() for key, value in headers if key.lower() == EXPOSE_HEADERS.lower()
             for name in value.split(",") if name.strip()]
    if header.lower() not in (name.lower() for name in names):
        names.append(header)
    return ", ".join(names)


class _LeaveOnClose:
    """The app's response iterable, whose ``close()`` also forgets the request's ID and trace (``response_done``).

    Leaner than werkzeug's ``ClosingIterator``: iterating goes straight to the wrapped iterable.
    """

    __slots__ = ("iterable",)

    def __init__(self, iterable: Iterable[bytes]) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.iterable)

    def close(self) -> None:
        try:
            close = getattr(self.iterable, "close", None)
            if close is not None:
                close()
        finally:
            response_done()


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
        app.before_request(_mirror_on_g)
        app.extensions[EXTENSION] = middleware


def _mirror_on_g() -> None:
    """Keep ``g.tracking_id`` working for code written against the blog post."""
    g.tracking_id = get_tracking_id()


def track_app(app: Any, config: Mapping[str, Any]) -> WsgiApp:
    """Give any WSGI app trackline's tracking layer, configured by ``config`` (``app.yaml``).

    A Flask app gets every key in its ``app.config`` (after its factory has run) and ``TrackingId``, unless it
    applied it itself: then its middleware takes the policy of the merged config, so it is never wrapped twice.
    Any other WSGI callable is wrapped in ``TrackingMiddleware`` with the ``TRACKING_ID_*`` keys of ``config``.
    Either way a ``MAX_CONTENT_LENGTH`` is enforced for every route (``BodyLimit``, inside the tracking layer so
    that its 413 carries the tracking headers).
    """
    if not isinstance(app, Flask):
        return TrackingMiddleware(limited(app, config.get("MAX_CONTENT_LENGTH")),
                                  TrackingPolicy.from_config({**DEFAULTS, **config}))
    app.config.update(config)
    middleware = app.extensions.get(EXTENSION)
    if middleware is None:
        TrackingId(app)
        middleware = app.extensions[EXTENSION]
    else:
        middleware.use(TrackingPolicy.from_config({**DEFAULTS, **app.config}))
    middleware.app = limited(middleware.app, app.config.get("MAX_CONTENT_LENGTH"))
    return app
