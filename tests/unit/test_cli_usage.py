"""The command line as a new user meets it: usage errors, --version, --help, output cut short by a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.paths import CONF, TRACKLINE


def run(*args: str, stdout: int | None = subprocess.PIPE, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRACKLINE), *args], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=60,
                          cwd=cwd)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A log dir with enough lines of one ID to fill a pipe many times over."""
    logs = tmp_path / "logs"
    logs.mkdir()
    row = '{"@timestamp": "2026-01-17T16:44:00.000+08:00", "level": "INFO", "logger": "trackline.api", ' \
          '"tracking_id": "req-1", "message": "%s", "pid": 7}\n'
    (logs / "app.log").write_text("".join(row % n for n in range(5000)))
    return logs


@pytest.mark.parametrize("args", [
    ("trace", "req-1", "--log-dir", "{logs}"),
    ("trace", "req-1", "--log-dir", "{logs}", "--pretty"),
    ("check-config", "--conf-dir", str(CONF)),
    ("--help",),
    ("trace", "--help"),
    ("--version",),
], ids=["trace", "trace-pretty", "check-config", "help", "trace-help", "version"])
def test_output_cut_short_by_a_closed_pipe_exits_quietly(log_dir: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    """``trackline trace ID | head -1``: no BrokenPipeError traceback, no "Exception ignored" at exit."""
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the first write: every write fails with EPIPE
    try:
        result = run(*(arg.format(logs=log_dir) for arg in args), stdout=writer, cwd=tmp_path)
    finally:
        os.close(writer)
    assert result.stderr == ""
    assert result.returncode in (0, 141)  # 141 = 128 + SIGPIPE, as a shell reports `grep ... | head -1`


def test_a_pipe_closed_after_the_first_line_ends_the_trace_quietly(log_dir: Path) -> None:
    pipeline = subprocess.run(f"set -o pipefail; '{TRACKLINE}' trace req-1 --log-dir '{log_dir}' | head -1",
                              shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60)
    assert pipeline.stderr == ""
    assert pipeline.stdout.count("\n") == 1 and '"tracking_id": "req-1"' in pipeline.stdout
    assert pipeline.returncode in (0, 141)  # 0 when stdout is unbuffered (-u): the cut-short write is not retried


@pytest.mark.parametrize(("args", "command", "error"), [
    (("trace", "req-1", "--pre"), "trace", "unrecognized arguments: --pre"),  # not taken for --pretty
    (("trace", "req-1", "--log"), "trace", "unrecognized arguments: --log"),
    (("check-config", "--conf"), "check-config", "unrecognized arguments: --conf"),
    (("serve", "--conf-dri", "x"), "serve", "unrecognized arguments: --conf-dri x"),
    (("trace", ""), "trace", "argument ID: must not be empty"),
    (("trace", " "), "trace", "argument ID: must not be empty"),
])
def test_usage_errors_show_the_subcommands_usage(args: tuple[str, ...], command: str, error: str) -> None:
    result = run(*args)
    assert (result.returncode, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"usage: trackline {command} ")
    assert lines[-1] == f"trackline {command}: error: {error}"


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"trackline {version('trackline')}\n", "")


@pytest.mark.parametrize("command", [(), ("serve",), ("check-config",), ("trace",)])
def test_help_is_plain_text(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: trackline")
    assert "``" not in result.stdout and ":func:" not in result.stdout


def test_trace_starts_without_importing_gunicorn_or_flask(log_dir: Path) -> None:
    probe = ("import sys; from trackline.cli import main; status = main(['trace', 'req-1', '--log-dir', sys.argv[1]]);"
             " print(sorted(m for m in sys.modules if m.split('.')[0] in ('gunicorn', 'flask', 'gevent')),"
             " file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", probe, str(log_dir)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stderr == "[]\n"
