"""The ``trackline`` command starts at once: each command imports only what it uses.

What is imported is behaviour and is checked here (in a fresh interpreter each time); how long it takes is
measured by ``scripts/bench --trace`` (docs/benchmarks.md), not by a timed test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from support.paths import CONF
from trackline.cli import installed_version
from trackline.config import ConfigError
from trackline.logs.setup import logged_files as setup_logged_files
from trackline.reader.logfiles import logged_files

#: Never needed by --version, --help or trace: the runtime's logging, the server, the app, the metadata library.
RUNTIME = {"gunicorn", "flask", "werkzeug", "gevent", "celery", "logging", "trackline.logs", "trackline.server",
           "trackline.context", "trackline.tracking", "importlib.metadata", "concurrent.futures"}
#: What the YAML reader brings: only ``trace`` without ``--log-dir`` (it reads logging.yaml) loads it.
YAML = {"yaml", "trackline.config"}
#: Heavier than anything the commands need from them.
HEAVY = {"typing", "dataclasses", "inspect", "tempfile"}

PROBE = """
import json, sys
from trackline.cli import main
try:
    status = main(json.loads(sys.argv[1]))
except SystemExit as exc:
    status = exc.code
sys.stdout.flush()
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded(probe: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules (and their parent packages) loaded when ``probe`` has run in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", probe, json.dumps(args)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stderr.splitlines()[-1])
    return {module.rsplit(".", depth)[0] for module in modules for depth in range(module.count(".") + 1)}


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """What ``main(args)`` imports, beyond what the interpreter loaded before it (a sitecustomize or a coverage
    hook may load more than a bare start does); the command must succeed."""
    bare = loaded("import json, sys; print(json.dumps(sorted(sys.modules)), file=sys.stderr)", env=env)
    return loaded(PROBE, *args, env=env) - bare


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text('{"@timestamp": "2026-01-17T16:44:00.000+08:00", "level": "INFO", "logger": "x",'
                                  ' "tracking_id": "req-1", "message": "m", "pid": 7}\n')
    return logs


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("trace", "--help")], ids=["version", "help",
                                                                                       "trace-help"])
def test_version_and_help_load_argparse_and_nothing_of_trackline_but_the_cli(args: tuple[str, ...]) -> None:
    loaded = imported(*args)
    assert not loaded & (RUNTIME | YAML | HEAVY), loaded & (RUNTIME | YAML | HEAVY)
    assert {m for m in loaded if m.startswith("trackline")} == {"trackline", "trackline.cli"}


def test_trace_with_log_dir_loads_the_reader_and_no_yaml(log_dir: Path) -> None:
    loaded = imported("trace", "req-1", "--log-dir", str(log_dir))
    assert not loaded & (RUNTIME | YAML | HEAVY), loaded & (RUNTIME | YAML | HEAVY)
    assert {m for m in loaded if m.startswith("trackline")} == {"trackline", "trackline.cli", "trackline.reader",
                                                                 "trackline.reader.trace", "trackline.reader.history",
                                                                 "trackline.reader.text"}  # only re, as trace


def test_trace_without_log_dir_reads_logging_yaml_without_the_logging_runtime(log_dir: Path) -> None:
    loaded = imported("trace", "req-1", env={"TRACKLINE_CONF_DIR": str(CONF), "TRACKLINE_LOG_DIR": str(log_dir)})
    assert loaded >= YAML
    assert not loaded & RUNTIME, loaded & RUNTIME


def test_installed_version_is_what_importlib_metadata_says() -> None:
    assert installed_version() == version("trackline")


def dist_info(folder: Path, name: str, text: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "METADATA").write_text(text)


@pytest.mark.parametrize(("layout", "expected"), [
    ({"trackline-2.5.0.dist-info": "Metadata-Version: 2.1\nName: trackline\nVersion: 2.5.0\n\nVersion: no\n"},
     "2.5.0"),
    ({"Trackline-3.0.dist-info": "Metadata-Version: 2.1\nName: Trackline\nVersion: 3.0\n"}, "3.0"),
    ({"trackline_extras-1.0.dist-info": "Name: trackline-extras\nVersion: 1.0\n"}, "unknown"),  # another project
    ({}, "unknown"),  # a source tree that was never installed
    ({"trackline-1.0.dist-info": "Name: trackline\nVersion: 1.0\n",  # two copies: importlib.metadata decides
      "trackline-2.0.dist-info": "Name: trackline\nVersion: 2.0\n"}, None),
    ({"trackline-4.0.dist-info": "Name: trackline\n\nVersion: 9\n"}, "unknown"),  # no Version header
], ids=["dist-info", "capitals", "other-project", "none", "two", "no-version"])
def test_installed_version_agrees_with_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           layout: dict[str, str], expected: str | None) -> None:
    from importlib.metadata import PackageNotFoundError

    site = tmp_path / "site"
    site.mkdir()
    for name, text in layout.items():
        dist_info(site, name, text)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(site)])
    try:
        reference = version("trackline")
    except PackageNotFoundError:
        reference = "unknown"
    reference = reference or "unknown"  # a METADATA without Version: importlib.metadata gives None
    assert installed_version() == reference
    if expected is not None:
        assert reference == expected


@pytest.mark.parametrize("text", [
    None,  # the shipped conf/logging.yaml
    "version: 1\nhandlers:\n  a: {class: logging.StreamHandler}\n",
    "version: 1\nhandlers: [a, b]\n",
    "version: 1\nhandlers:\n  a: 3\n",
    "version: 1\nhandlers:\n  a: {filename: x.log}\n  b: {filename: x.log}\n"
    "  c: {filename: '${TL_TEST_DIR:-d}/y.log'}\n",
    "version: 1\nhandlers: {a: {filename: [unclosed\n",
    "- a list\n",
], ids=["shipped", "no-file", "handlers-list", "handler-not-mapping", "files", "invalid", "not-mapping"])
def test_trace_reads_logging_yaml_as_the_logging_setup_does(tmp_path: Path, text: str | None) -> None:
    """``trace`` reads logging.yaml's file names without trackline.logs: the same files, or the same message."""
    path = CONF / "logging.yaml"
    if text is not None:
        path = tmp_path / "logging.yaml"
        path.write_text(text)
    outcomes = []
    for reader in (logged_files, setup_logged_files):
        try:
            outcomes.append(reader(path))
        except ConfigError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]
