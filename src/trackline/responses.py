"""The blog post's response classes (the JSON envelope of ``trackline.envelope``) and the error handlers."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, got_request_exception, has_request_context, request
from werkzeug.exceptions import HTTPException

from trackline.context import get_tracking_id
from trackline.envelope import envelope

log = logging.getLogger("trackline.responses")


def _describe(outcome: str) -> str:
    """The post's default message: ``"GET /api/health success"``."""
    if has_request_context():
        return f"{request.method} {request.path} {outcome}"
    return outcome


class JsonResponse(Response):
    """A JSON envelope response whose ``code`` is its HTTP status; data JSON cannot encode is sent as text."""

    default_mimetype = "application/json"
    status_code_default = HTTPStatus.OK
    outcome = "ok"

    def __init__(self, data: Any = None, code: int | None = None, msg: str = "", **kwargs: Any) -> None:
        status = int(code if code is not None else self.status_code_default)
        try:
            body = envelope(status, msg or _describe(self.outcome), data)
        except (TypeError, ValueError):  # e.g. non-string keys or a circular reference
            log.exception("response data could not be serialized")
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            body = envelope(status, "response serialization error", {"tracking_id": get_tracking_id()})
        super().__init__(body, status=status, **kwargs)


class Success(JsonResponse):
    outcome = "success"


class _Problem(JsonResponse):
    """Base of the error responses: ``msg`` comes first, as in the post."""

    def __init__(self, msg: str = "", data: Any = None, **kwargs: Any) -> None:
        super().__init__(data=data, msg=msg, **kwargs)


class Fail(_Problem):
    status_code_default = HTTPStatus.INTERNAL_SERVER_ERROR
    outcome = "failed"


class ArgumentNotFound(_Problem):
    status_code_default = HTTPStatus.BAD_REQUEST
    outcome = "argument not found"


class ArgumentInvalid(_Problem):
    status_code_default = HTTPStatus.BAD_REQUEST
    outcome = "argument invalid"


class AuthFailed(_Problem):
    status_code_default = HTTPStatus.UNAUTHORIZED
    outcome = "auth failed"


class ResourceConflict(_Problem):
    status_code_default = HTTPStatus.CONFLICT
    outcome = "resource conflict"


class ResourceNotFound(_Problem):
    status_code_default = HTTPStatus.NOT_FOUND
    outcome = "resource not found"


class ResourceForbidden(_Problem):
    status_code_default = HTTPStatus.FORBIDDEN
    outcome = "resource forbidden"


def handle_http_error(error: HTTPException) -> JsonResponse:
    """An HTTP error (404, 405, 413, ...) keeps its status and headers (e.g. ``Allow``) inside the envelope."""
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    return JsonResponse(code=error.code, msg=_describe(str(error.name).lower()), headers=headers)


def handle_unexpected_error(error: Exception) -> JsonResponse:
    """Anything else: the traceback goes to the log, the client gets a generic 500 and the tracking ID.

    Flask's ``got_request_exception`` is sent as Flask sends it for an exception nobody handles, so that error
    trackers listening to it (Sentry's Flask integration, Rollbar, ...) see the 500 too."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    got_request_exception.send(app, _async_wrapper=app.ensure_sync, exception=error)
    log.error("unhandled exception: %s %s", request.method, request.path, exc_info=error)
    return Fail(msg="internal error", data={"tracking_id": get_tracking_id()})


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)
