"""trackline serve | check-config | trace | sql | compact | worker: the commands an operator and systemd run.

Each command imports what it uses when it runs, and nothing is imported for the others: ``--version`` and
``--help`` load argparse only; ``trace --log-dir`` the reader (no YAML, logging, gunicorn or Flask); ``trace``
without it also the YAML reader for logging.yaml's file names (tests/unit/test_cli_start.py holds them to it).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which the commands do not need
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

#: The exit status of a command whose output was cut short by a closed pipe, as if SIGPIPE had ended it.
EXIT_BROKEN_PIPE = 128 + 13


def _serve(args: argparse.Namespace) -> int:
    from trackline.config import conf_dir
    from trackline.server.application import serve

    serve(conf_dir(args.conf_dir), args.app)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from trackline.config import conf_dir
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
    from trackline.config import conf_dir
    from trackline.worker.runtime import run

    return run(conf_dir(args.conf_dir))


def _fallback_log_dir() -> Path | None:
    """The log directory the shipped logging.yaml would choose: $TRACKLINE_LOG_DIR, $LOGS_DIRECTORY, ./logs."""
    from pathlib import Path

    for candidate in (os.environ.get("TRACKLINE_LOG_DIR"), os.environ.get("LOGS_DIRECTORY"), "logs"):
        if candidate and os.path.isdir(candidate):
            return Path(candidate)
    return None


def _log_bases(args: argparse.Namespace) -> list[Path]:
    """What ``trace`` reads: each ``--log-dir`` (and its host folders), else the files logging.yaml writes, else
    (logging.yaml unreadable or broken) the directory the shipped logging.yaml would use, with a warning.

    Only the last two read YAML: ``--log-dir`` starts without it."""
    from pathlib import Path

    from trackline.reader.trace import directory_bases

    if args.log_dir:
        return [base for directory in args.log_dir for base in directory_bases(Path(directory))]
    from trackline.config import LOGGING_FILE, ConfigError, conf_dir
    from trackline.reader.logfiles import logged_files

    try:
        return logged_files(conf_dir(args.conf_dir) / LOGGING_FILE)
    except ConfigError as exc:
        fallback = _fallback_log_dir()
        if fallback is None:
            raise ConfigError(f"cannot tell where the logs are (give --log-dir DIR): {exc}") from None
        print(f"trackline: warning: {exc}; reading {fallback} instead", file=sys.stderr)
        return directory_bases(fallback)


def _trace(args: argparse.Namespace) -> int:
    from trackline.reader.text import escape, escape_json
    from trackline.reader.trace import find, parse_since, pretty

    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    try:
        bases = _log_bases(args)
    except Exception as exc:
        if not _is_config_error(exc):
            raise
        print(f"trackline: {exc}", file=sys.stderr)
        return 2
    directories = list(dict.fromkeys(args.log_dir or [str(base.parent) for base in bases]))
    missing = [directory for directory in directories if not os.path.isdir(directory)]
    if missing:
        print(f"trackline: no such log directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    closed = [directory for directory in directories if not os.access(directory, os.R_OK | os.X_OK)]
    if closed:
        print(f"trackline: cannot read log directory {', '.join(closed)}: permission denied (run it as root or as"
              " the service's user)", file=sys.stderr)
        return 2
    search = find(args.id, bases, since)
    if args.waterfall or args.json or args.html:
        from trackline.reader.waterfall import emit  # the span tree: docs/waterfall.md

        if not emit(search.matches, args.id, waterfall=args.waterfall, as_json=args.json, html=args.html,
                    pretty=args.pretty):
            return 2
    else:
        # plain: the stored line, re-encoded only when it holds a raw control character (reader/text.py)
        rows = pretty(search.matches) if args.pretty else [escape_json(match.line) for match in search.matches]
        sys.stdout.write("".join(f"{row}\n" for row in rows))
    for problem in search.unreadable:
        print(f"trackline: skipped unreadable file {escape(problem)}", file=sys.stderr)
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


def _sql(args: argparse.Namespace) -> int:
    from trackline.reader.sql import run_command

    return run_command(args, _log_bases)


def _compact(args: argparse.Namespace) -> int:
    from trackline.reader.compact import run_command

    before = os.umask(0o027)  # the history holds the logs' lines: no more readable than they are
    os.umask(before | 0o027)
    try:
        return run_command(args)
    finally:
        os.umask(before)  # main() also runs in-process (tests, scripts): leave the caller's umask as it was


def _request_id(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _is_config_error(exc: BaseException) -> bool:
    """``exc`` is a ``trackline.config.ConfigError``, without importing trackline.config (and YAML) to ask: only
    a command that imported it can have raised one."""
    config = sys.modules.get("trackline.config")
    return config is not None and isinstance(exc, config.ConfigError)


def installed_version() -> str:
    """trackline's version as ``importlib.metadata.version("trackline")`` finds it, or ``unknown`` (a source tree
    that was never installed).

    The common case is read here: the first ``sys.path`` directory holding trackline's metadata holds one
    ``trackline-VERSION.dist-info`` (pip's install, editable or not), whose METADATA says ``Version:``.
    importlib.metadata takes longer to import than the rest of ``trackline --version`` together, so it is asked
    only for anything else (an egg, a zip file on the path, two copies side by side).
    """
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            if os.path.isfile(entry):
                break  # a zip file on the path: importlib.metadata reads those
            continue  # a missing directory holds nothing
        found = [name for name in names if name.lower().endswith((".dist-info", ".egg-info"))
                 and _normalized(name.lower().rpartition(".")[0].partition("-")[0]) == "trackline"]
        if not found:
            continue
        if len(found) == 1 and found[0].lower().endswith(".dist-info"):
            listed = _metadata_version(os.path.join(entry or ".", found[0], "METADATA"))
            if listed:
                return listed
        break
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trackline") or "unknown"  # None: a METADATA without a Version header
    except PackageNotFoundError:
        return "unknown"


def _normalized(name: str) -> str:
    """A distribution name as importlib.metadata compares them (PEP 503, dashes as underscores)."""
    for separator in ".-":
        name = name.replace(separator, "_")
    while "__" in name:
        name = name.replace("__", "_")
    return name


def _metadata_version(path: str) -> str | None:
    """The ``Version:`` header of a METADATA file, or ``None``."""
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    return None  # the headers end before the description
                key, _, value = line.partition(":")
                if key.lower() == "version":
                    return value.strip() or None
    except (OSError, UnicodeDecodeError):
        return None
    return None


class _Version(argparse.Action):
    """``--version``: looks the installed version up only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print trackline's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"trackline {installed_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackline", description="Run and inspect a trackline service.",
                                     allow_abbrev=False)
    parser.add_argument("--version", action=_Version)
    # prog given: argparse would otherwise build a help formatter (and import shutil) to work out this same text
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", prog=parser.prog)
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
    view = trace.add_mutually_exclusive_group()
    view.add_argument("--pretty", action="store_true", help="a compact human view instead of JSON lines")
    view.add_argument("--waterfall", action="store_true",
                      help="the request as a tree of spans on a time axis, each with its lines")
    view.add_argument("--json", action="store_true", help="the tree of spans as one JSON document")
    trace.add_argument("--html", metavar="FILE", help="write the waterfall as one self-contained HTML page")
    trace.set_defaults(run=_trace)
    sql = command("sql", "run a SQL query (DuckDB) over the logs' typed views: access, app, error, worker, edge,"
                         " lines (docs/sql.md)")
    sql.add_argument("query", metavar="QUERY", help='e.g. "SELECT status_code, count(*) FROM access GROUP BY 1"')
    sql.add_argument("--log-dir", action="append",
                     help="a log directory or a log host's tree, with its Parquet history; repeatable (default: the"
                          " files that the config directory's logging.yaml writes)")
    sql.add_argument("--conf-dir", help=conf_help)
    sql.add_argument("--since", help="only lines from this time on: ISO 8601 or a span such as 15m, 2h, 1d")
    sql.add_argument("--until", help="only lines before this time: ISO 8601 or a span back from now")
    sql_output = sql.add_mutually_exclusive_group()
    sql_output.add_argument("--csv", dest="output", action="store_const", const="csv", help="CSV with a header")
    sql_output.add_argument("--json", dest="output", action="store_const", const="json", help="JSON lines")
    sql.set_defaults(run=_sql, output="table")
    compact = command("compact", "turn a log directory's rotated files into its Parquet history and apply"
                                 " retention (the log host's timer runs it; docs/sql.md)")
    compact.add_argument("--log-dir", default="/var/log/trackline-central",
                         help="the log directory (default: /var/log/trackline-central)")
    compact.add_argument("--keep-json-days", type=int, default=7, metavar="N",
                         help="delete compacted rotations N days after they were rotated (default 7)")
    compact.add_argument("--keep-parquet-days", type=int, default=0, metavar="N",
                         help="delete history dates older than N days (default 0: keep them all)")
    compact.set_defaults(run=_compact)
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
    except Exception as exc:
        if not _is_config_error(exc):
            raise
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
