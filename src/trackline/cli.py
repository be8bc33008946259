"""``trackline serve | check-config | trace | worker``: the commands an operator and systemd run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from trackline.config import ConfigError, conf_dir
from trackline.server.settings import LOGGING_FILE, check_server_config


def _serve(args: argparse.Namespace) -> int:
    from trackline.server.application import serve

    serve(conf_dir(args.conf_dir), args.app)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from trackline.worker.settings import check_celery_config

    directory = conf_dir(args.conf_dir)
    checked = check_server_config(directory, app_spec=args.app)
    celery_problems, celery_notes = check_celery_config(directory)  # here, not in serve: it imports the app
    if isinstance(checked, list) or celery_problems:
        # dict.fromkeys: a logging.yaml problem that both checks find is said once
        for problem in dict.fromkeys([*(checked if isinstance(checked, list) else []), *celery_problems]):
            print(f"trackline: {problem}", file=sys.stderr)
        return 1
    print("\n".join([checked.describe(), *(f"  {note}" for note in celery_notes)]))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from trackline.worker.runtime import run

    return run(conf_dir(args.conf_dir))


def _log_files(args: argparse.Namespace) -> list[Path]:
    """What ``trace`` reads: app/access/error.log in each ``--log-dir``, else the files logging.yaml writes."""
    from trackline.logs.reader import LOG_NAMES
    from trackline.logs.setup import logged_files

    if args.log_dir:
        return [Path(directory) / name for directory in args.log_dir for name in LOG_NAMES]
    return logged_files(conf_dir(args.conf_dir) / LOGGING_FILE)


def _trace(args: argparse.Namespace) -> int:
    from trackline.logs.reader import find, parse_since, pretty

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    try:
        files = _log_files(args)
    except ConfigError as exc:
        print(f"trackline: cannot tell where the logs are (give --log-dir DIR): {exc}", file=sys.stderr)
        return 2
    directories = list(dict.fromkeys(str(file.parent) for file in files))
    missing = [directory for directory in directories if not Path(directory).is_dir()]
    if missing:
        print(f"trackline: no such log directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    search = find(args.tracking_id, files, since)
    for match in search.matches:
        print(pretty(match) if args.pretty else match.line)
    for problem in search.unreadable:
        print(f"trackline: skipped unreadable file {problem}", file=sys.stderr)
    if search.malformed:
        print(f"trackline: skipped {search.malformed} malformed line(s)", file=sys.stderr)
    if search.unfinished:
        print(f"trackline: skipped {search.unfinished} unfinished last line(s): a write in progress"
              " (run again to see it) or a file cut short", file=sys.stderr)
    if not search.matches:
        print(f"trackline: no lines for {args.tracking_id} in {', '.join(directories)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    conf_help = "config directory (default: $TRACKLINE_CONF_DIR, $CONFIGURATION_DIRECTORY, then ./conf)"
    app_help = ("the WSGI app to serve, in gunicorn's syntax: module:name or module:factory(args)"
                " (default: gunicorn.yaml's wsgi_app, else the demo API)")
    serve = commands.add_parser("serve", help="run the service under gunicorn in the foreground")
    serve.add_argument("--conf-dir", help=conf_help)
    serve.add_argument("--app", metavar="SPEC", help=app_help)
    serve.set_defaults(run=_serve)
    check = commands.add_parser("check-config", help="validate gunicorn.yaml, logging.yaml and app.yaml (and"
                                                     " worker.yaml), and load the app as a worker would")
    check.add_argument("--conf-dir", help=conf_help)
    check.add_argument("--app", metavar="SPEC", help=app_help)
    check.set_defaults(run=_check_config)
    trace = commands.add_parser("trace", help="print every log line of one tracking ID, in time order")
    trace.add_argument("tracking_id", metavar="ID")
    trace.add_argument("--log-dir", action="append",
                       help="read app.log, access.log, error.log, worker.log here, repeatable"
                            " (default: the files that the config directory's logging.yaml writes)")
    trace.add_argument("--conf-dir", help=conf_help)
    trace.add_argument("--since", help="only lines from this time on: ISO 8601 or a span such as 15m, 2h, 1d")
    trace.add_argument("--pretty", action="store_true", help="a compact human view instead of JSON lines")
    trace.set_defaults(run=_trace)
    worker = commands.add_parser("worker", help="run the Celery worker of worker.yaml in the foreground")
    worker.add_argument("--conf-dir", help=conf_help)
    worker.set_defaults(run=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            print(f"trackline: {problem}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
