"""Every bad config gives one clear line naming the file and the problem: ConfigError and `trackline` itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.conf import edit_yaml
from support.paths import CONF, TRACKLINE
from trackline.config import ConfigError
from trackline.logs import configure_logging
from trackline.logs.setup import handler_files
from trackline.server.settings import check_server_config

NOBODY = 65534

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ./conf with logs and run files under tmp_path."""
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("TRACKLINE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("TRACKLINE_BIND", "127.0.0.1:0")
    for name in ("TRACKLINE_LOG_LEVEL", "TRACKLINE_WORKERS", "TRACKLINE_CONF_DIR"):
        monkeypatch.delenv(name, raising=False)
    return Path(shutil.copytree(CONF, tmp_path / "conf"))


def setter(section: str, name: str, key: str, value: Any) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config[section][name][key] = value

    return edit


def drop_version(config: dict[str, Any]) -> None:
    del config["version"]


def log_level_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRACKLINE_LOG_LEVEL", "LOUD")


def log_dir_below_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(tmp_path / "plain-file" / "logs"))


def unset_variable(config: dict[str, Any]) -> None:
    config["handlers"]["app_file"]["filename"] = "${TRACKLINE_TEST_NEVER_SET}/app.log"


#: name -> (YAML edit, environment change, fragments the one-line message must contain)
LOGGING_CASES: dict[str, tuple[Edit | None, Callable[..., None] | None, list[str]]] = {
    "missing version": (drop_version, None, ["'version: 1' is required"]),
    "unknown formatter class": (setter("formatters", "json", "()", "trackline.logs.NoSuch"), None,
                                ["formatter 'json'", "trackline.logs.NoSuch"]),
    "unknown handler class": (setter("handlers", "app_file", "class", "logging.handlers.NoSuchHandler"), None,
                              ["handler 'app_file'", "NoSuchHandler"]),
    "undefined filter": (setter("handlers", "app_file", "filters", ["tracking_id", "no_such_filter"]), None,
                         ["handler 'app_file'", "no_such_filter"]),
    "undefined handler": (setter("loggers", "gunicorn.access", "handlers", ["access_file", "no_such_handler"]),
                          None, ["logger 'gunicorn.access' uses undefined handler 'no_such_handler'"]),
    "bad level name": (None, log_level_env, ["logger", "Unknown level: 'LOUD'"]),
    "log dir below a file": (None, log_dir_below_a_file, ["handler 'app_file'", "cannot create directory",
                                                          "plain-file/logs"]),
    "unset variable": (unset_variable, None, ["${TRACKLINE_TEST_NEVER_SET} is not set and has no default",
                                              "handlers.app_file.filename"]),
}


@pytest.mark.parametrize(("edit", "environ", "fragments"), LOGGING_CASES.values(), ids=LOGGING_CASES.keys())
def test_bad_logging_yaml_is_one_clear_line(
    edit: Edit | None, environ: Callable[..., None] | None, fragments: list[str], conf_dir: Path,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_logging: None,
) -> None:
    path = conf_dir / "logging.yaml"
    if edit:
        edit_yaml(path, edit)
    if environ:
        environ(monkeypatch, tmp_path)
    with pytest.raises(ConfigError) as caught:
        configure_logging(path)
    assert_one_line(str(caught.value), path, fragments)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("version: 1\nroot:\n\tlevel: INFO\n", ["invalid YAML at line 3, column 1 `level: INFO`", "'\\t'",
                                                "indent with spaces, not tabs"]),
        # the parser notices the missing '}' on line 3; the line to fix is where the brace was opened
        ("version: 1\nroot: {level: INFO\nloggers: {}\n", ["invalid YAML at line 2 `root: {level: INFO`: ",
                                                          "at line 3, column 8",
                                                          "flow mapping that starts at line 2"]),
        ("version: 1\nroot:\n  level: INFO\n   handlers: []\n", ["invalid YAML at line 4, column 12 "
                                                                "`handlers: []`: mapping values are not allowed"]),
        ("- version: 1\n- root: {}\n", ["expected a mapping at the top level, found list"]),
    ],
    ids=["tab-indent", "unclosed-brace", "bad-indent", "top-level-list"],
)
def test_broken_yaml_names_the_place(text: str, fragments: list[str], conf_dir: Path) -> None:
    path = conf_dir / "logging.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        configure_logging(path)
    assert_one_line(str(caught.value), path, fragments)


def assert_one_line(message: str, path: Path, fragments: list[str]) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message


SERVER_CASES = {
    "unknown setting": ("gunicorn.yaml", "wokers: 2\n", ["unknown gunicorn setting 'wokers'"]),
    "wrong type": ("gunicorn.yaml", "workers: many\n", ["workers:", "'many'"]),
    "owned setting": ("gunicorn.yaml", "accesslog: /tmp/access.log\n",
                      ["'accesslog' cannot be set here: log files are configured in logging.yaml"]),
    "misspelt tracking key": ("app.yaml", "TRACKING_ID_HEADR: X-Id\n",
                              ["unknown trackline key TRACKING_ID_HEADR (did you mean TRACKING_ID_HEADER?)"]),
    "misspelt trace key": ("app.yaml", "TRACE_SAMPLE: false\n",
                           ["unknown trackline key TRACE_SAMPLE (did you mean TRACE_SAMPLED?)"]),
    "misspelt envelope key": ("app.yaml", "TRACKLINE_ERROR_ENVELOP: true\n",
                              ["unknown trackline key TRACKLINE_ERROR_ENVELOP (did you mean "
                               "TRACKLINE_ERROR_ENVELOPE?)"]),
    "missing chdir": ("gunicorn.yaml", "chdir: /nonexistent/dir\n", ["chdir: can't chdir to '/nonexistent/dir'"]),
    "preload_app": ("gunicorn.yaml", "preload_app: true\n", ["preload_app: must be false"]),
    "lower-case app key": ("app.yaml", "secret_key: x\n", ["'secret_key': Flask config keys are upper case"]),
    "envelope not a bool": ("app.yaml", "TRACKLINE_ERROR_ENVELOPE: yes please\n",
                            ["TRACKLINE_ERROR_ENVELOPE: must be true or false"]),
    "unreadable secret file": ("app.yaml", "SECRET_KEY: !file /nonexistent/secret_key\n",
                               ["SECRET_KEY: cannot read !file /nonexistent/secret_key: No such file or directory"]),
    "bad app value": ("app.yaml", "TRACKING_ID_MAX_LENGTH: 0\n", ["TRACKING_ID_MAX_LENGTH: must be at least 1"]),
    "alias not a list": ("app.yaml", "TRACKING_ID_ALIASES: X-Request-ID\n",
                         ["TRACKING_ID_ALIASES: must be a list of header names, not 'X-Request-ID'"]),
    "header with a space": ("app.yaml", "TRACKING_ID_HEADER: X Tracking\n",
                            ["TRACKING_ID_HEADER: must be a header name, not 'X Tracking'"]),
    "header with an underscore": ("app.yaml", "TRACKING_ID_HEADER: X_Tracking_ID\n",
                                  ["TRACKING_ID_HEADER: must be a header name, not 'X_Tracking_ID' (gunicorn drops "
                                   "request headers whose name has '_')"]),
    "alias with a colon": ("app.yaml", "TRACKING_ID_ALIASES: [X-Request-ID, 'X-Id:']\n",
                           ["TRACKING_ID_ALIASES: must be a list of header names, not ['X-Request-ID', 'X-Id:']"]),
    "bad generator": ("app.yaml", "TRACKING_ID_GENERATOR: uuid.nope\n", ["TRACKING_ID_GENERATOR: module 'uuid'"]),
    "generator makes spaces": ("app.yaml", "TRACKING_ID_GENERATOR: time.ctime\n",
                               ["TRACKING_ID_GENERATOR: made '", "it must be visible ASCII with no spaces"]),
    "generator over the length": ("app.yaml", "TRACKING_ID_MAX_LENGTH: 16\n",  # uuid4 makes 36 characters
                                  ["TRACKING_ID_GENERATOR: made '", "(36 characters, over TRACKING_ID_MAX_LENGTH "
                                   "(16)): a trackline receiving it would replace it"]),
    "generator sometimes outside the characters": (  # a 64-character alphabet, '_' refused: ~50% of the draws
        "app.yaml", "TRACKING_ID_GENERATOR: secrets.token_urlsafe\nTRACKING_ID_CHARACTERS: A-Za-z0-9-\n",
        ["TRACKING_ID_GENERATOR: made '", "(a character outside TRACKING_ID_CHARACTERS)"]),
    "generator raises": ("app.yaml", "TRACKING_ID_GENERATOR: json.loads\n",
                         ["TRACKING_ID_GENERATOR: calling it failed: TypeError: ",
                          "missing 1 required positional argument"]),
    "size not a number": ("app.yaml", "MAX_CONTENT_LENGTH: lots\n", ["MAX_CONTENT_LENGTH: must be a number of bytes"]),
    "downstream not a URL": ("app.yaml", "DOWNSTREAM_URL: 42\n", ["DOWNSTREAM_URL: must be an http:// or https://"]),
    "unknown worker class": ("gunicorn.yaml", "worker_class: geventt\n", ["worker_class: cannot load 'geventt'"]),
    "bad port": ("gunicorn.yaml", "bind: 127.0.0.1:notaport\n", ["bind: 'notaport' is not a valid port number"]),
    "no workers": ("gunicorn.yaml", "workers: 0\n", ["workers: must be at least 1, not 0"]),
    "control socket path too long": ("gunicorn.yaml", f"control_socket: /run/{'x' * 100}/gunicorn.ctl\n",
                                     [f"control_socket: /run/{'x' * 100}/gunicorn.ctl is 118 bytes, more than a "
                                      "unix socket path may have (107)", "or control_socket_disable: true"]),
}


@pytest.mark.parametrize(("file", "line", "fragments"), SERVER_CASES.values(), ids=SERVER_CASES.keys())
def test_bad_server_setting_is_one_clear_line(file: str, line: str, fragments: list[str], conf_dir: Path) -> None:
    path = conf_dir / file
    with path.open("a") as yaml_file:
        yaml_file.write(line)
    problems = check_server_config(conf_dir)
    assert isinstance(problems, list) and len(problems) == 1, problems
    assert_one_line(problems[0], path, fragments)


def run_trackline(*args: str, user: list[str] | None = None, cwd: Path | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Run the installed ``trackline`` command (as ``user``, a privilege-dropping prefix, if given)."""
    return subprocess.run([*(user or []), str(TRACKLINE), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_check_config_accepts_the_shipped_config(conf_dir: Path) -> None:
    done = run_trackline("check-config", "--conf-dir", str(conf_dir))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"config OK: {conf_dir}\n")


def test_check_config_names_the_files_serve_writes_and_not_the_workers(conf_dir: Path, tmp_path: Path) -> None:
    done = run_trackline("check-config", "--conf-dir", str(conf_dir))
    logs = tmp_path / "logs"
    assert f"  log files:    {logs}/app.log, {logs}/access.log, {logs}/error.log\n" in done.stdout, done.stdout


def test_a_file_reached_through_a_buffering_handler_is_one_serve_writes(tmp_path: Path) -> None:
    config = {"version": 1, "handlers": {
        "file": {"class": "logging.FileHandler", "filename": str(tmp_path / "app.log")},
        "buffer": {"class": "logging.handlers.MemoryHandler", "capacity": 10, "target": "file"},
        "spare": {"class": "logging.FileHandler", "filename": str(tmp_path / "spare.log")}},
        "root": {"handlers": ["buffer"]}}
    assert handler_files(config, tmp_path / "logging.yaml", used_only=True) == [tmp_path / "app.log"]
    assert handler_files(config, tmp_path / "logging.yaml") == [tmp_path / "app.log", tmp_path / "spare.log"]


def test_check_config_lists_every_problem_one_line_each(conf_dir: Path) -> None:
    with (conf_dir / "gunicorn.yaml").open("a") as gunicorn_yaml:
        gunicorn_yaml.write("wokers: 2\n")
    edit_yaml(conf_dir / "logging.yaml", setter("formatters", "json", "()", "trackline.logs.NoSuch"))
    (conf_dir / "app.yaml").write_text("TRACKING_ID_HEADR: X-Id\n")
    done = run_trackline("check-config", "--conf-dir", str(conf_dir))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        str(conf_dir / name) for name in ("gunicorn.yaml", "logging.yaml", "app.yaml")]
    assert all(line.startswith("trackline: ") for line in lines)


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_broken_yaml_fails_at_start_with_one_line(command: str, conf_dir: Path) -> None:
    (conf_dir / "logging.yaml").write_text("version: 1\nroot:\n\tlevel: INFO\n")
    done = run_trackline(command, "--conf-dir", str(conf_dir))
    assert done.returncode == 1
    assert done.stderr == f"trackline: {conf_dir / 'logging.yaml'}: invalid YAML at line 3, column 1 `level: INFO`: " \
                          "found character '\\t' that cannot start any token (indent with spaces, not tabs)\n"


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A temp dir an unprivileged user can enter (pytest's tmp_path sits below a 0700 directory)."""
    root = Path(tempfile.mkdtemp(prefix="trackline-unwritable-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def test_unwritable_log_dir_is_one_clear_line(world_readable_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write anywhere, so the check runs as an unprivileged user on a 0555 log directory."""
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing: cannot run the check as an unprivileged user")
        user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        probe = run_trackline("--help", user=user)
        if probe.returncode != 0:  # e.g. the checkout lies under a 0700 directory (mktemp -d, /root)
            pytest.skip(f"the unprivileged user cannot run {TRACKLINE}: {probe.stderr.strip()}")
    else:
        user = []
    conf = Path(shutil.copytree(CONF, world_readable_dir / "conf"))
    logs = world_readable_dir / "logs"
    logs.mkdir(mode=0o555)
    logs.chmod(0o555)
    monkeypatch.setenv("TRACKLINE_LOG_DIR", str(logs))
    monkeypatch.setenv("TRACKLINE_RUN_DIR", str(world_readable_dir / "run"))
    (world_readable_dir / "run").mkdir(mode=0o777)  # the pid file's directory is checked as well
    (world_readable_dir / "run").chmod(0o777)
    done = run_trackline("check-config", "--conf-dir", str(conf), user=user, cwd=world_readable_dir)
    assert done.returncode == 1
    assert done.stderr == (f"trackline: {conf / 'logging.yaml'}: handler 'app_file': "
                           f"directory {logs} is not writable\n")
