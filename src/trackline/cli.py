"""trackline serve | check-config | trace | worker: the commands an operator and systemd run.

Modules behind a command are imported when it runs: ``trace`` starts without gunicorn or Flask.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from trackline.config import LOGGING_FILE, ConfigError, conf_dir

#: The exit status of a command whose output was cut short by a closed pipe, as if SIGPIPE had ended it.
EXIT_BROKEN_PIPE = 128 + 13


def _serve(args: argparse.Namespace) -> int:
    from trackline.server.application import serve

    serve(conf_dir(args.conf_dir), args.app)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from trackline.server.settings import check_server_config
    from trackline.worker.settings import check_celery_config

    directory = conf_dir(args.conf_dir)
    checked = check_server_config(directory, app_spec=args.app)
    celery_problems, celery_notes = check_celery_config(directory)  # here, not in serve: it imports the app
    if isinstance(checked, list) or celery_problems:
        # dict.fromkeys: a logging.yaml problem that both checks find is said once
        for problem in dict.fromkeys([*(checked if isinstance(checked, list) else []), *celery_problems]):
            if args.verbose and (traceback := getattr(problem, "traceback", "")):  # the app's, from its check
                print(traceback, file=sys.stderr)
            print(f"trackline: {problem}", file=sys.stderr)
        return 1
    print("\n".join([checked.describe(), *(f"  {note}" for note in celery_notes)]))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from trackline.worker.runtime import run

    return run(conf_dir(args.conf_dir))


def _fallback_log_dir() -> Path | None:
    """The log directory the shipped logging.yaml would choose: $TRACKLINE_LOG_DIR, $LOGS_DIRECTORY, ./logs."""
    for candidate in (os.environ.get("TRACKLINE_LOG_DIR"), os.environ.get("LOGS_DIRECTORY"), "logs"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _log_bases(args: argparse.Namespace) -> list[Path]:
    """What ``trace`` reads: each ``--log-dir`` (and its host folders), else the files logging.yaml writes, else
    (logging.yaml unreadable or broken) the directory the shipped logging.yaml would use, with a warning."""
    from trackline.logs.setup import logged_files
    from trackline.reader.trace import directory_bases

    if args.log_dir:
        return [base for directory in args.log_dir for base in directory_bases(Path(directory))]
    try:
        return logged_files(conf_dir(args.conf_dir) / LOGGING_FILE)
    except ConfigError as exc:
        fallback = _fallback_log_dir()
        if fallback is None:
            raise ConfigError(f"cannot tell where the logs are (give --log-dir DIR): {exc}") from None
        print(f"trackline: warning: {exc}; reading {fallback} instead", file=sys.stderr)
        return directory_bases(fallback)


def _trace(args: argparse.Namespace) -> int:
    from trackline.reader.trace import find, parse_since, pretty

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    try:
        bases = _log_bases(args)
    except ConfigError as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    directories = list(dict.fromkeys(args.log_dir or [str(base.parent) for base in bases]))
    missing = [directory for directory in directories if not Path(directory).is_dir()]
    if missing:
        print(f"trackline: no such log directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    closed = [directory for directory in directories if not os.access(directory, os.R_OK | os.X_OK)]
    if closed:
        print(f"trackline: cannot read log directory {', '.join(closed)}: permission denied (run it as root or as"
              " the service's user)", file=sys.stderr)
        return 2
    search = find(args.id, bases, since)
    rows = pretty(search.matches) if args.pretty else [match.line for match in search.matches]
    sys.stdout.write("".join(f"{row}\n" for row in rows))
    for problem in search.unreadable:
        print(f"trackline: skipped unreadable file {problem}", file=sys.stderr)
    if search.malformed:
        print(f"trackline: skipped {search.malformed} malformed line(s)", file=sys.stderr)
    if search.unfinished:
        print(f"trackline: skipped {search.unfinished} unfinished last line(s): a write in progress"
              " (run again to see it) or a file cut short", file=sys.stderr)
    if search.duplicates:
        print(f"trackline: skipped {search.duplicates} duplicate line(s) delivered twice to the log host",
              file=sys.stderr)
    if not search.matches:
        print(f"trackline: no lines for {args.id} in {', '.join(directories)}", file=sys.stderr)
        return 1
    return 0


def _request_id(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


class _Version(argparse.Action):
    """``--version``: looks the installed version up only when asked (importlib.metadata is slow to import)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print trackline's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("trackline")
        except PackageNotFoundError:  # a source tree that was never installed
            installed = "unknown"
        print(f"trackline {installed}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackline", description="Run and inspect a trackline service.",
                                     allow_abbrev=False)
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    conf_help = "config directory (default: $TRACKLINE_CONF_DIR, $CONFIGURATION_DIRECTORY, then ./conf)"
    app_help = ("the WSGI app to serve, in gunicorn's syntax: module:name or module:factory(args)"
                " (default: gunicorn.yaml's wsgi_app, else the demo API)")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        sub.set_defaults(parser=sub)
        return sub

    serve = command("serve", "run the service under gunicorn in the foreground")
    serve.add_argument("--conf-dir", help=conf_help)
    serve.add_argument("--app", metavar="SPEC", help=app_help)
    serve.set_defaults(run=_serve)
    check = command("check-config", "validate gunicorn.yaml, logging.yaml and app.yaml (and worker.yaml), and"
                                    " load the app as a worker would")
    check.add_argument("--conf-dir", help=conf_help)
    check.add_argument("--app", metavar="SPEC", help=app_help)
    check.add_argument("--verbose", "-v", action="store_true",
                       help="when the app cannot be loaded, print its full traceback above the one line")
    check.set_defaults(run=_check_config)
    trace = command("trace", "print every log line of one request (tracking ID or W3C trace-id), in time order")
    trace.add_argument("id", metavar="ID", type=_request_id, help="a tracking ID or a trace_id")
    trace.add_argument("--log-dir", action="append",
                       help="read app.log, access.log, error.log, worker.log, trackline-access.log and their"
                            " rotations here and in each host folder below it (a log host's tree); repeatable"
                            " (default: the files that the config directory's logging.yaml writes)")
    trace.add_argument("--conf-dir", help=conf_help)
    trace.add_argument("--since", help="only lines from this time on: ISO 8601 or a span such as 15m, 2h, 1d")
    trace.add_argument("--pretty", action="store_true", help="a compact human view instead of JSON lines")
    trace.set_defaults(run=_trace)
    worker = command("worker", "run the Celery worker of worker.yaml in the foreground")
    worker.add_argument("--conf-dir", help=conf_help)
    worker.set_defaults(run=_worker)
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported with its subcommand's usage, not the top-level one."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _run(argv: Sequence[str] | None) -> int:
    args = _parse(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            print(f"trackline: {problem}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # here, not at exit: also after --help and --version, which exit by SystemExit
    except BrokenPipeError:  # ``trackline trace ID | head -1``: the reader has gone, so stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
