"""check-config catches what serve would die of, one line each, exit 1, in the words serve uses (and serve says
it before "serving on")."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from support.paths import CONF, TRACKLINE

GUNICORN = "conf/gunicorn.yaml"
CASES = {
    "port out of range": ({"TRACKLINE_BIND": "127.0.0.1:80000"}, "",
                          f"{GUNICORN}: bind: cannot listen on 127.0.0.1:80000: port 80000 is out of range "
                          "(1-65535, or 0 for any free port)"),
    "host that does not resolve": ({"TRACKLINE_BIND": "no-such-host.invalid:8000"}, "",
                                   f"{GUNICORN}: bind: cannot listen on no-such-host.invalid:8000: "
                                   "'no-such-host.invalid' does not resolve: "),
    "address not on this machine": ({"TRACKLINE_BIND": "192.0.2.1:8000"}, "",  # TEST-NET-1, never local
                                    f"{GUNICORN}: bind: cannot listen on 192.0.2.1:8000: Cannot assign requested "
                                    "address (192.0.2.1 is not an address of this machine)"),
    "unix socket in a missing directory": ({"TRACKLINE_BIND": "unix:{root}/no-such-dir/trackline.sock"}, "",
                                           f"{GUNICORN}: bind: cannot listen on unix:{{root}}/no-such-dir/"
                                           "trackline.sock: directory {root}/no-such-dir does not exist"),
    "certfile that cannot be read": ({}, "certfile: {root}/missing-cert.pem\n",
                                     f"{GUNICORN}: certfile: cannot read {{root}}/missing-cert.pem: No such file or "
                                     "directory"),
    "keyfile that cannot be read": ({}, "keyfile: {root}\n",
                                    f"{GUNICORN}: keyfile: cannot read {{root}}: Is a directory"),
    "ca_certs that cannot be read": ({}, "ca_certs: {root}/ca.pem\n",
                                     f"{GUNICORN}: ca_certs: cannot read {{root}}/ca.pem: No such file or directory"),
}


def run(root: Path, command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLINE_")}
    environment.update({"TRACKLINE_LOG_DIR": str(root / "logs"), "TRACKLINE_RUN_DIR": str(root / "run"),
                        "TRACKLINE_BIND": "127.0.0.1:0", **env})
    return subprocess.run([str(TRACKLINE), command, "--conf-dir", "conf"], capture_output=True, text=True,
                          timeout=60, env=environment, cwd=root)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_check_config_and_serve_say_the_same_one_line(case: str, tmp_path: Path) -> None:
    env, gunicorn_yaml, line = CASES[case]
    shutil.copytree(CONF, tmp_path / "conf")
    with (tmp_path / "conf" / "gunicorn.yaml").open("a") as stream:
        stream.write(gunicorn_yaml.format(root=tmp_path))
    env = {name: value.format(root=tmp_path) for name, value in env.items()}
    for command in ("check-config", "serve"):
        done = run(tmp_path, command, env)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert len(done.stderr.splitlines()) == 1, (command, done.stderr)  # no traceback, no "serving on"
        assert done.stderr.startswith(f"trackline: {line.format(root=tmp_path)}"), (command, done.stderr)


def test_a_port_in_use_is_for_serve_to_refuse_not_for_a_check_of_the_running_service(tmp_path: Path) -> None:
    shutil.copytree(CONF, tmp_path / "conf")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        checked = run(tmp_path, "check-config", {"TRACKLINE_BIND": bind})
        assert checked.returncode == 0, checked.stderr  # systemctl reload checks while trackline holds the port
        served = run(tmp_path, "serve", {"TRACKLINE_BIND": bind})
    assert served.returncode == 1
    assert served.stderr.splitlines() == [f"trackline: cannot listen on {bind}: Address already in use (change bind "
                                          "in gunicorn.yaml or TRACKLINE_BIND)"]
