"""What each piece of trackline's per-request layer costs a loaded gevent worker (``scripts/bench --layers``).

A piece timed in a hot loop (request_path.py) costs a loaded worker two to four times as much: the worker runs
gunicorn, gevent, Flask and trackline in turn for every request, and each most likely finds its code and data
gone from the CPU's caches. So each piece is measured where it runs: (g), trackline serving (b)'s bare app, is
served whole and once more for each piece taken out (``PIECES``), side by side with (b) bare Flask and (d)
gunicorn's stock text access log, in interleaved cycles. A piece's cost is the worker CPU per request of (g)
whole less that of (g) without it.

A piece is taken out when the interpreter starts: a ``sitecustomize`` module on ``PYTHONPATH`` calls
``take_out(name)``, which replaces a function of trackline's with one that skips it. Those servers' lines lack
what was taken out: they are for this measurement only.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from run import HERE, Server, count_lines, gunicorn_server, median, run_cycles, served_by_trackline, stock_server


def _no_access_line() -> None:
    from trackline.server.access import JsonLogger

    JsonLogger.access = lambda self, resp, req, environ, request_time: None  # type: ignore[method-assign]


def _no_filter_on_access_line() -> None:
    from trackline.logs.filters import TrackingIdFilter

    stamp = TrackingIdFilter.filter

    def only_other_lines(self: TrackingIdFilter, record: Any) -> Any:
        return True if record.name == "gunicorn.access" else stamp(self, record)
    TrackingIdFilter.filter = only_other_lines  # type: ignore[method-assign]


def _access_line_not_written() -> None:
    from trackline.logs.handlers import WatchedAppendFileHandler

    emit = WatchedAppendFileHandler.emit

    def format_only(self: WatchedAppendFileHandler, record: Any) -> None:
        if record.name != "gunicorn.access":
            emit(self, record)
        else:
            (self.format(record) + self.terminator).encode()
    WatchedAppendFileHandler.emit = format_only  # type: ignore[method-assign]


def _no_response_headers() -> None:
    from trackline.tracking import TrackingMiddleware

    TrackingMiddleware.response_headers = lambda self, headers, tracking_id: headers  # type: ignore[method-assign]


def _no_new_trace() -> None:
    from trackline.policy import TrackingPolicy
    from trackline.tracecontext import TraceContext

    same = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", None, "01")
    TrackingPolicy.start_trace = lambda self, tracking_id: same  # type: ignore[method-assign]


def _no_in_flight_registry() -> None:
    from trackline.server import inflight

    inflight.start = lambda environ: None


def _no_tracking() -> None:
    from trackline.tracking import TrackingMiddleware

    TrackingMiddleware.__call__ = lambda self, environ, start_response: self.app(  # type: ignore[method-assign]
        environ, start_response)


#: name: (what is taken out, the functions that take it out).
PIECES: dict[str, tuple[str, tuple[Callable[[], None], ...]]] = {
    "access": ("the access line", (_no_access_line,)),
    "access-filter": ("the access line's TrackingIdFilter (its trace fields)", (_no_filter_on_access_line,)),
    "access-write": ("the access line's queueing and write (formatted still)", (_access_line_not_written,)),
    "headers": ("X-Tracking-ID and X-DateTime on the response", (_no_response_headers,)),
    "trace": ("a new trace per request (one fixed trace instead)", (_no_new_trace,)),
    "inflight": ("the in-flight registry", (_no_in_flight_registry,)),
    "all": ("the tracking middleware, the in-flight registry and the access line",
            (_no_tracking, _no_in_flight_registry, _no_access_line)),
}


def take_out(name: str) -> None:
    """Take the piece ``name`` out of trackline in this process (and the workers it forks)."""
    for remove in PIECES[name][1]:
        remove()


def servers(tmp: Path, names: list[str]) -> list[Server]:
    """(b), (d), (g) whole and (g) without each piece of ``names``."""
    whole = served_by_trackline("(g) trackline serving (b)'s app", tmp / "g", "apps:create_flask_app()")
    found = [gunicorn_server("(b) bare Flask", tmp / "b", "apps:create_flask_app()"),
             stock_server("(d) stock: bare Flask + --access-logfile", tmp / "d", "apps:create_flask_app()"), whole]
    for name in names:
        server = served_by_trackline(f"(g) less {PIECES[name][0]}", tmp / f"g-{name}", "apps:create_flask_app()")
        site = tmp / f"site-{name}"
        site.mkdir(parents=True)
        (site / "sitecustomize.py").write_text(f"import layers\nlayers.take_out({name!r})\n")
        server.env["PYTHONPATH"] = f"{site}:{HERE}"
        found.append(server)
    return found


def report(args: argparse.Namespace, tmp: Path) -> str:
    """Serve and load ``servers`` for ``args.cycles`` cycles; the markdown table of what each piece costs."""
    names = args.layers or list(PIECES)
    if unknown := [name for name in names if name not in PIECES]:
        raise SystemExit(f"scripts/bench --layers: no piece named {', '.join(unknown)} (pieces: {', '.join(PIECES)})")
    found = servers(tmp, names)
    run_cycles(args, found)
    bare, stock, whole = found[:3]
    cpu = {server.label: median(server, "cpu_us") for server in found}
    lines = [
        f"## What each piece costs a worker: GET {args.path}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s, {args.cycles} cycles interleaved",
        "",
        "| server | worker CPU us/request | req/s | access lines | the piece costs (us/request) |",
        "|---|---:|---:|---:|---:|",
        f"| {bare.label} | {cpu[bare.label]:.1f} | {median(bare, 'rps'):.0f} | 0 | |",
        f"| {stock.label} | {cpu[stock.label]:.1f} | {median(stock, 'rps'):.0f} | "
        f"{count_lines(stock.root / 'access.log')} | stock access line: {cpu[stock.label] - cpu[bare.label]:.1f} |",
        f"| {whole.label} | {cpu[whole.label]:.1f} | {median(whole, 'rps'):.0f} | "
        f"{count_lines(whole.root / 'logs' / 'access.log')} | trackline's layer: "
        f"{cpu[whole.label] - cpu[bare.label]:.1f} |",
    ]
    for server in found[3:]:
        lines.append(f"| {server.label} | {cpu[server.label]:.1f} | {median(server, 'rps'):.0f} | "
                     f"{count_lines(server.root / 'logs' / 'access.log')} | "
                     f"**{cpu[whole.label] - cpu[server.label]:.1f}** |")
    ratios = [mine.rps / theirs.rps for mine, theirs in zip(whole.loads, bare.loads, strict=True)]
    lines += ["", f"(g)/(b) req/s, median of cycles: {statistics.median(ratios):.2f}"]
    return "\n".join(lines)
