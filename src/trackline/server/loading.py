"""Which app trackline serves, and loading it the way a worker does: gunicorn's ``wsgi_app`` syntax, its
``chdir`` and ``pythonpath``, then trackline's tracking layer around whatever the spec names.

The master never imports the app: each worker does (after gevent's patching), so a HUP's new workers run the
code installed now. Before the master starts or accepts a HUP, ``import_problem`` imports the app the same
way in a child process, so a broken app is one line of error, not a loop of workers failing to boot.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from traceback import StackSummary, TracebackException, extract_tb
from types import MappingProxyType
from typing import Any

from trackline.appconfig import AppConfig

_settings: Mapping[str, Any] = MappingProxyType({})

#: Exit status of the import check's child when the app cannot be loaded (its one line is on stdout).
_CANNOT_LOAD = 3


@dataclass(frozen=True)
class AppSource:
    """Where the served app comes from: a gunicorn ``wsgi_app`` spec (``None``: the demo API) and the
    ``chdir``/``pythonpath`` settings that say where its code lives."""

    spec: str | None = None
    chdir: str | None = None
    pythonpath: str | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], override: str | None = None) -> AppSource:
        """From ``gunicorn.yaml``'s settings; ``override`` is ``trackline serve --app SPEC``."""
        spec = override or settings.get("wsgi_app")
        return cls(str(spec) if spec else None, settings.get("chdir"), settings.get("pythonpath"))

    def describe(self) -> str:
        if self.spec is None:
            return "trackline's demo API"
        where = [f"{name} {value}" for name, value in (("chdir", self.chdir), ("pythonpath", self.pythonpath))
                 if value]
        return f"{self.spec}" + (f" ({', '.join(where)})" if where else "")

    def enter(self) -> None:
        """Make the app's code importable as gunicorn's own Application does: ``chdir``, then ``pythonpath``."""
        if self.chdir:
            os.chdir(self.chdir)
        if (directory := self.chdir or os.getcwd()) not in sys.path:  # gunicorn's chdir defaults to the cwd
            sys.path.insert(0, directory)
        for path in (self.pythonpath or "").split(","):
            if path.strip() and (absolute := os.path.abspath(path.strip())) not in sys.path:
                sys.path.insert(0, absolute)


def load_app(source: AppSource, app_config: AppConfig) -> Any:
    """The WSGI app a worker serves: the demo API built with app.yaml's settings, or ``source.spec`` imported
    with gunicorn's ``import_app`` and given the tracking layer (``trackline.tracking.track_app``) and, for a
    Flask app with ``TRACKLINE_ERROR_ENVELOPE: true``, the JSON envelope error handlers."""
    global _settings
    source.enter()
    settings = app_config.settings
    _settings = MappingProxyType(dict(settings))
    if source.spec is None:
        from trackline.demo import create_app

        return create_app(settings)
    from flask import Flask
    from gunicorn.util import import_app

    from trackline.responses import register_error_handlers
    from trackline.tracking import track_app

    app = import_app(source.spec)
    if not isinstance(app, Flask) and not _takes_environ_and_start_response(app):
        raise TypeError(f"{source.spec} is not a WSGI app (it cannot be called with environ and start_response); "
                        "a factory needs its call: module:factory()")
    app = track_app(app, app_config)
    if app_config.error_envelope and isinstance(app, Flask):
        register_error_handlers(app)
    return app


def app_settings() -> Mapping[str, Any]:
    """The served app's ``app.yaml`` keys, for a factory that needs one while it builds the app (a database URL
    for an extension's ``init_app``); trackline puts them into ``app.config`` after the factory returns anyway.
    Empty outside ``trackline serve``."""
    return _settings


def _takes_environ_and_start_response(app: Any) -> bool:
    try:
        inspect.signature(app).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins): let the first request tell
        return True
    return True


class LoadProblem(str):
    """Why the app cannot be loaded: the one line (this string), and the child's full ``traceback`` ("" when
    there is none to show: a timeout, a child that died without saying)."""

    traceback: str

    def __new__(cls, line: str, traceback: str = "") -> LoadProblem:
        problem = super().__new__(cls, line)
        problem.traceback = traceback
        return problem


def import_problem(source: AppSource, app_config: AppConfig, gevent: bool, timeout: float) -> LoadProblem | None:
    """Load the app as a worker would, in a child process (gevent-patched when the workers are); ``None`` if it
    loads, else one line naming the spec, the reason and where it was raised, with the child's traceback."""
    request = json.dumps({"source": asdict(source), "app_config": dict(app_config.raw), "gevent": gevent},
                         default=str)
    try:
        child = subprocess.run([sys.executable, "-P", "-m", __name__], input=request, capture_output=True, text=True,
                               timeout=timeout)
    except subprocess.TimeoutExpired:
        return LoadProblem(f"wsgi_app {source.spec!r}: loading took more than {timeout:g} s (gunicorn's timeout, "
                           "the time a worker has to boot)")
    if child.returncode == 0:
        return None
    try:
        answer = json.loads(child.stdout.strip().splitlines()[-1])
        reason, traceback = str(answer["reason"]), str(answer["traceback"])
    except (IndexError, ValueError, KeyError, TypeError):  # the child died before it could answer (a segfault)
        reason = (child.stderr.strip() or child.stdout.strip() or f"exit status {child.returncode}").splitlines()[-1]
        traceback = child.stderr.strip()
    return LoadProblem(f"wsgi_app {source.spec!r}: cannot load it: {reason}", traceback)


def _check_in_child() -> int:
    """The child of ``import_problem``: read the request from stdin, load the app, say why if it fails (one JSON
    line on stdout: the reason and the traceback)."""
    request = json.load(sys.stdin)
    if request["gevent"]:
        from gevent import monkey

        monkey.patch_all()
    try:
        load_app(AppSource(**request["source"]), AppConfig.from_settings(request["app_config"]))
    except BaseException as exc:  # an app's import may raise anything, SystemExit included
        # no traceback when only the loading raised it (no such module, attribute or call): the line says it all
        traceback = _traceback(exc) if _where(exc) else ""
        print("\n" + json.dumps({"reason": _reason(exc), "traceback": traceback}))
        return _CANNOT_LOAD
    return 0


def _traceback(exc: BaseException) -> str:
    """The traceback as Python prints it, without the frames of the loading (trackline, gunicorn's ``import_app``,
    the import machinery): the app's own frames and those of the libraries it called."""
    shown = TracebackException.from_exception(exc)
    loaders = _loader_dirs()
    shown.stack = StackSummary.from_list([frame for frame in shown.stack if not frame.filename.startswith(loaders)
                                          and not frame.filename.startswith("<frozen importlib")])
    return "".join(shown.format()).rstrip()


def _loader_dirs() -> tuple[str, ...]:
    """The directories of the code that loads an app: importlib, gunicorn, trackline."""
    import importlib

    import gunicorn

    import trackline

    return tuple(os.path.dirname(module.__file__ or "") + os.sep for module in (importlib, gunicorn, trackline))


def _reason(exc: BaseException) -> str:
    """``TypeName: message (file:line)`` on one line, the place where the app raised it; gunicorn's
    ``AppImportError`` speaks for itself."""
    message = exc.msg if isinstance(exc, SyntaxError) and exc.filename else str(exc)  # its place comes below
    text = " ".join(message.split())
    if type(exc).__name__ == "AppImportError":
        return text
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = _where(exc)
    return f"{reason} ({where})" if where else reason


def _where(exc: BaseException) -> str | None:
    """``file:line`` where ``exc`` was raised: the innermost frame of the app's code or of a library it called,
    relative to the ``sys.path`` entry it was imported from. ``None`` when only the loading raised it (the import
    machinery, gunicorn's ``import_app``, trackline's checks): such a message names the spec itself."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:  # raised by the compiler, not a frame
        return f"{_shown(exc.filename)}:{exc.lineno}"
    loaders = _loader_dirs()
    frames = [frame for frame in extract_tb(exc.__traceback__)
              if not frame.filename.startswith("<") and not frame.filename.startswith(loaders)]  # <frozen os>
    return f"{_shown(frames[-1].filename)}:{frames[-1].lineno}" if frames else None


def _shown(filename: str) -> str:
    """The shortest of ``filename`` relative to an import path entry (``acme/config.py``), else the file as is."""
    absolute = os.path.abspath(filename)
    entries = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    relative = [os.path.relpath(absolute, entry) for entry in entries
                if absolute.startswith(entry.rstrip(os.sep) + os.sep)]
    return min(relative, key=len) if relative else filename


if __name__ == "__main__":
    status = _check_in_child()
    sys.stdout.flush()
    os._exit(status)  # not sys.exit: a thread the app started at import (a scheduler) must not hold the check
