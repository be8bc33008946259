"""``trackline check-config`` (and ``serve``) as an operator runs them: exit status and one line per problem."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.paths import CONF, TRACKLINE

#: Drops root's permission bypass so a 0o555 directory is unwritable, as for the real service user.
NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
          "--bounding-set=-dac_override,-dac_read_search", "--"]


@dataclass
class Setup:
    """A copy of ./conf and the environment a check runs with."""

    root: Path
    env: dict[str, str]
    wrapper: list[str]

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    def append(self, name: str, text: str) -> None:
        with (self.conf_dir / name).open("a") as stream:
            stream.write(text)

    def replace(self, name: str, old: str, new: str) -> None:
        path = self.conf_dir / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    def run(self, command: str = "check-config", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.wrapper, str(TRACKLINE), command, "--conf-dir", str(self.conf_dir)],
                              env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.root)


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    shutil.copytree(CONF, tmp_path / "conf")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLINE_")}
    env.update(TRACKLINE_LOG_DIR=str(tmp_path / "logs"), TRACKLINE_RUN_DIR=str(tmp_path / "run"),
               TRACKLINE_BIND="127.0.0.1:0")
    return Setup(tmp_path, env, [])


def test_good_config_exits_0_and_says_what_would_run(setup: Setup) -> None:
    result = setup.run()
    assert (result.returncode, result.stderr) == (0, "")
    assert "bind:         127.0.0.1:0" in result.stdout
    assert "workers:      2 x gevent" in result.stdout
    for name in ("app.log", "access.log", "error.log"):
        assert str(setup.root / "logs" / name) in result.stdout


def _unwritable_log_dir(setup: Setup) -> None:
    logs = setup.root / "logs"
    logs.mkdir(mode=0o555)
    logs.chmod(0o555)
    if os.geteuid() == 0:
        setup.wrapper = NO_DAC


def _log_dir_below_a_file(setup: Setup) -> None:
    (setup.root / "file").write_text("")
    setup.env["TRACKLINE_LOG_DIR"] = str(setup.root / "file" / "logs")


def _two_files(setup: Setup) -> None:
    setup.append("gunicorn.yaml", "wrokers: 3\n")
    setup.replace("logging.yaml", "trackline.logs.JsonFormatter", "trackline.logs.NoSuchFormatter")


#: case name -> (how to break the copy, one (file, text) per expected stderr line)
BAD: dict[str, tuple[Callable[[Setup], None], list[tuple[str, str]]]] = {
    "unknown-setting": (lambda s: s.append("gunicorn.yaml", "wrokers: 3\n"),
                        [("gunicorn.yaml", "unknown gunicorn setting 'wrokers'")]),
    "wrong-type": (lambda s: s.replace("gunicorn.yaml", "\ntimeout: 30", "\ntimeout: thirty"),
                   [("gunicorn.yaml", "timeout: expected an integer, not 'thirty'")]),
    "wrong-type-bool": (lambda s: s.append("gunicorn.yaml", "preload_app: maybe\n"),
                        [("gunicorn.yaml", "preload_app: expected true or false, not 'maybe'")]),
    "owned-logconfig_dict": (lambda s: s.append("gunicorn.yaml", "logconfig_dict: {}\n"),
                             [("gunicorn.yaml", "'logconfig_dict' cannot be set here")]),
    "owned-accesslog": (lambda s: s.append("gunicorn.yaml", "accesslog: /tmp/access.log\n"),
                        [("gunicorn.yaml", "'accesslog' cannot be set here")]),
    "broken-yaml": (lambda s: s.append("gunicorn.yaml", "bind: [unclosed\n"),
                    [("gunicorn.yaml", "invalid YAML at line")]),
    "unknown-formatter": (lambda s: s.replace("logging.yaml", "trackline.logs.JsonFormatter",
                                              "trackline.logs.NoSuchFormatter"),
                          [("logging.yaml", "formatter 'json'")]),
    "unwritable-log-dir": (_unwritable_log_dir, [("logging.yaml", "not writable")]),
    "log-dir-below-a-file": (_log_dir_below_a_file, [("logging.yaml", "is not a directory")]),
    # root may write to /proc by its mode bits, but mkdir there fails: checked by trying, as serve creates it
    "uncreatable-log-dir": (lambda s: s.env.update(TRACKLINE_LOG_DIR="/proc/nope"),
                            [("logging.yaml", "cannot create directory /proc/nope: No such file or directory")]),
    "missing-gunicorn-yaml": (lambda s: (s.conf_dir / "gunicorn.yaml").unlink(),
                              [("gunicorn.yaml", "cannot read: No such file")]),
    "two-problems-in-two-files": (_two_files, [("gunicorn.yaml", "unknown gunicorn setting 'wrokers'"),
                                               ("logging.yaml", "formatter 'json'")]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_config_exits_nonzero_with_one_line_per_problem(setup: Setup, case: str) -> None:
    breaks, expected = BAD[case]
    breaks(setup)
    result = setup.run()
    assert result.returncode != 0 and result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(expected), lines
    for line, (name, text) in zip(lines, expected, strict=False):
        assert line.startswith(f"trackline: {setup.conf_dir / name}"), line
        assert text in line, line


def test_serve_with_a_bad_config_exits_with_one_clear_line(setup: Setup) -> None:
    setup.append("gunicorn.yaml", "wrokers: 3\n")
    result = setup.run("serve", timeout=30)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [
        f"trackline: {setup.conf_dir / 'gunicorn.yaml'}: unknown gunicorn setting 'wrokers'"]


def test_serve_and_check_config_agree_on_an_uncreatable_log_dir(setup: Setup) -> None:
    setup.env["TRACKLINE_LOG_DIR"] = "/proc/nope"
    checked, served = setup.run(), setup.run("serve", timeout=30)
    assert checked.returncode == served.returncode == 1
    assert checked.stderr == served.stderr and "cannot create directory /proc/nope" in checked.stderr


def test_check_config_leaves_no_trace_of_its_directory_check(setup: Setup) -> None:
    assert setup.run().returncode == 0
    assert sorted(p.name for p in setup.root.iterdir()) == ["conf"]  # logs/ and run/ only checked, not made
