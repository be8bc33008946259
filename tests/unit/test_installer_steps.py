"""scripts/installer's steps and roles against a --root staging tree in tmp_path, in seconds: no real venv, pip,
nginx or rsyslogd. A fake python stands for Debian's (and for the venv's, pip included), fake nginx and rsyslogd
on PATH pass or refuse as a test says. The real ones run in tests/system/test_*install*.py."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from installer import edge, layout, roles, rsyslog, service, uninstall, venv
from installer.job import Job
from installer.options import InstallOptions, parse_install, parse_uninstall
from installer.system import Failure
from support.fakes import FAKE_PYTHON
from support.paths import REPO
from support.requirements import unavailable

#: nginx -t and rsyslogd -N1: pass, or print FAKE_REFUSAL and fail when it is set. Every call is logged, and the
#: config file checked (the last argument) is kept as calls.log.TOOL.conf.
FAKE_CHECKER = r"""#!/bin/sh
echo "$0 $*" >> "$FAKE_LOG"
for last; do :; done
[ -f "$last" ] && cp "$last" "$FAKE_LOG.${0##*/}.conf"
[ -z "$FAKE_REFUSAL" ] && exit 0
printf '%s\n' "$FAKE_REFUSAL" >&2
exit 1
"""


class Fakes:
    """The fake tools' directory (first on PATH), their call log, and a way to make the checkers refuse."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dir, self.log, self.monkeypatch = directory, directory / "calls.log", monkeypatch
        for name, script in (("python3", FAKE_PYTHON), ("nginx", FAKE_CHECKER), ("rsyslogd", FAKE_CHECKER)):
            (directory / name).write_text(script)
            (directory / name).chmod(0o755)
        self.log.touch()
        monkeypatch.setenv("FAKE_LOG", str(self.log))
        monkeypatch.setenv("PATH", f"{directory}:{os.environ['PATH']}")
        monkeypatch.delenv("FAKE_REFUSAL", raising=False)

    @property
    def python(self) -> str:
        return str(self.dir / "python3")

    def calls(self, tool: str = "") -> list[str]:
        """The logged calls (of ``tool``: a path's last part), and the log emptied."""
        lines = self.log.read_text().splitlines()
        self.log.write_text("")
        return [line for line in lines if not tool or line.split()[0].endswith(f"/{tool}")]

    def refuse(self, message: str) -> None:
        self.monkeypatch.setenv("FAKE_REFUSAL", message)


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    directory = tmp_path / "fake-bin"
    directory.mkdir()
    return Fakes(directory, monkeypatch)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


def install(root: Path, fakes: Fakes, *argv: str) -> None:
    """scripts/install --root ROOT ARGV with the fake python."""
    roles.install(parse_install([*argv, "--root", str(root)]), python=fakes.python)


def snapshot(root: Path, times: bool = True) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: content hash (or link target, or "dir"), mode, owner, and mtime if ``times``
    (a rollback puts files back, but their directories have changed)."""
    tree: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content: object = "dir" if path.is_dir() else os.readlink(path) if path.is_symlink() else \
            hashlib.sha256(path.read_bytes()).hexdigest()
        tree[str(path.relative_to(root))] = (content, info.st_mode, info.st_uid, info.st_gid,
                                             info.st_mtime_ns if times else None)
    return tree


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


@pytest.fixture
def job(root: Path, fakes: Fakes, tmp_path: Path) -> Job:
    """A web job staged into ``root`` with a scratch directory of its own."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Job(InstallOptions(root=str(root)), scratch, python=fakes.python)


# -- web and worker ------------------------------------------------------------------------------------------------


def test_web_stages_every_file_with_its_mode(root: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes)
    conf = sorted(p.name for p in (REPO / "conf").glob("*.yaml"))
    assert files_under(root) == sorted([
        *(f"etc/trackline/{name}" for name in conf), "etc/logrotate.d/trackline",
        "etc/systemd/system/trackline.service", "usr/local/bin/trackline", "opt/trackline/venv/.trackline-source",
        "opt/trackline/venv/bin/python", "opt/trackline/venv/bin/trackline", "opt/trackline/venv/pyvenv.cfg"])
    for name in conf:
        assert (root / "etc/trackline" / name).read_bytes() == (REPO / "conf" / name).read_bytes()
    assert (root / "etc/logrotate.d/trackline").read_bytes() == (REPO / "logrotate/trackline").read_bytes()
    unit = "trackline.service"
    assert (root / "etc/systemd/system" / unit).read_bytes() == (REPO / "systemd" / unit).read_bytes()
    for path in root.rglob("*"):
        if not path.is_relative_to(root / "opt"):
            want = 0o755 if path.is_dir() or (path.name == "trackline" and "bin" in path.parts) else 0o644
            assert path.stat().st_mode & 0o777 == want, path
    out = capsys.readouterr().out
    assert out.startswith("install: --root: not creating the 'trackline' user (create it on the target host, "
                          "e.g. in postinst)\ninstall: created venv /opt/trackline/venv from ")
    assert "install: installed trackline into /opt/trackline/venv\n" in out
    assert out.endswith("install: --root: not running systemctl daemon-reload\ninstall: done\n")


def test_a_second_install_changes_nothing_and_an_edit_is_kept(root: Path, fakes: Fakes,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes)
    before, _ = snapshot(root), fakes.calls()
    capsys.readouterr()
    install(root, fakes)
    assert snapshot(root) == before  # not even a timestamp
    assert "installed" not in capsys.readouterr().out
    assert not fakes.calls("python")  # the stamp matched: no venv, no pip

    edited = root / "etc/trackline/logging.yaml"
    edited.write_text(edited.read_text() + "# mine\n")
    install(root, fakes)
    assert edited.read_text().endswith("# mine\n")
    assert (root / "etc/trackline/logging.yaml.dist").read_bytes() == (REPO / "conf/logging.yaml").read_bytes()
    assert "kept your edited /etc/trackline/logging.yaml" in capsys.readouterr().out
    with_dist = snapshot(root)
    install(root, fakes)
    assert snapshot(root) == with_dist


def test_an_upgraded_host_s_logs_become_readable_by_adm_but_no_file_linked_in(tmp_path: Path) -> None:
    """A host installed before (LogsDirectory=: trackline:trackline 0750): the installer, as root, makes the
    directory trackline:adm 2750 and the service user's logs group adm, never a file linked in from elsewhere."""
    if os.geteuid() != 0:
        unavailable("giving a file to the group adm needs root")
    uid, adm = os.geteuid(), grp.getgrnam("adm").gr_gid  # this test's user stands for the service's
    logs, outside = tmp_path / "logs", tmp_path / "secret"
    logs.mkdir(mode=0o750)
    outside.write_text("root only\n")
    outside.chmod(0o600)
    for name, mode in (("app.log", 0o640), ("access.log-20261201-1.gz", 0o644), ("error.log", 0o600)):
        (logs / name).write_text("{}\n")
        (logs / name).chmod(mode)
    (logs / "innocent.log").symlink_to(outside)
    os.link(outside, logs / "linked.log")
    (logs / "other.log").write_text("{}\n")
    os.chown(logs / "other.log", pwd.getpwnam("nobody").pw_uid, -1)

    assert service.adopt_logs(logs, uid, adm) == 3
    found = {p.name: (p.lstat().st_gid, p.lstat().st_mode & 0o7777) for p in [logs, *logs.iterdir()]}
    assert found == {"logs": (adm, 0o2750), "app.log": (adm, 0o640), "access.log-20261201-1.gz": (adm, 0o640),
                     "error.log": (adm, 0o600), "innocent.log": (0, 0o777), "linked.log": (0, 0o600),
                     "other.log": (0, 0o644)}
    assert (outside.stat().st_gid, outside.stat().st_mode & 0o777) == (0, 0o600)
    assert service.adopt_logs(logs, uid, adm) == 0  # a second run changes nothing


def test_worker_installs_celery_and_its_own_unit(root: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes, "--role", "worker")
    assert (root / "etc/systemd/system/trackline-worker.service").exists()
    assert not (root / "etc/systemd/system/trackline.service").exists()
    pip = fakes.calls("python")[-1]
    assert "[requests,celery]" in pip
    assert "install: --root: not running systemctl daemon-reload" in capsys.readouterr().out


def test_prefix_moves_the_venv_the_unit_and_the_command(root: Path, fakes: Fakes) -> None:
    install(root, fakes, "--prefix", "/srv/tl")
    unit = (root / "etc/systemd/system/trackline.service").read_text()
    assert "/srv/tl/venv/bin/trackline serve" in unit and "/opt/trackline" not in unit
    assert (root / "usr/local/bin/trackline").read_text().splitlines()[-1] == 'exec "/srv/tl/venv/bin/trackline" "$@"'
    assert (root / "srv/tl/venv/.trackline-source").exists()


def test_app_names_itself_in_a_new_or_unedited_gunicorn_yaml(root: Path, fakes: Fakes,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    gunicorn = root / "etc/trackline/gunicorn.yaml"
    install(root, fakes)
    install(root, fakes, "--app", "acme:create_app('eu')")  # the unedited default becomes the one naming the app
    assert gunicorn.read_bytes() == (REPO / "conf/gunicorn.yaml").read_bytes() + \
        b"\n# The app to serve (scripts/install --app).\nwsgi_app: 'acme:create_app(''eu'')'\n"
    gunicorn.write_text("workers: 2\n")  # an operator's own file is kept, the app's version beside it
    capsys.readouterr()
    install(root, fakes, "--app", "acme:create_app()")
    assert gunicorn.read_text() == "workers: 2\n"
    assert (root / "etc/trackline/gunicorn.yaml.dist").read_text().endswith("wsgi_app: 'acme:create_app()'\n")
    assert "to serve acme:create_app(), add to /etc/trackline/gunicorn.yaml: wsgi_app: 'acme:create_app()'" in \
        capsys.readouterr().out


def test_the_command_is_ours_or_left_alone(root: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes)
    command = root / "usr/local/bin/trackline"
    assert command.read_bytes() == service.command_script("/opt/trackline/venv")
    assert command.read_text() == (
        "#!/bin/sh\n"
        "# trackline with the service's directories (installed by trackline's scripts/install; see docs/deploy.md).\n"
        'export CONFIGURATION_DIRECTORY="${CONFIGURATION_DIRECTORY:-/etc/trackline}"\n'
        'export LOGS_DIRECTORY="${LOGS_DIRECTORY:-/var/log/trackline}"\n'
        'export RUNTIME_DIRECTORY="${RUNTIME_DIRECTORY:-/run/trackline}"\n'
        'exec "/opt/trackline/venv/bin/trackline" "$@"\n')
    command.write_text("#!/bin/sh\necho another trackline\n")
    capsys.readouterr()
    install(root, fakes)
    assert command.read_text() == "#!/bin/sh\necho another trackline\n"
    assert "install: left /usr/local/bin/trackline alone: it is not trackline's " \
           "(use /opt/trackline/venv/bin/trackline)" in capsys.readouterr().out


# -- the venv ------------------------------------------------------------------------------------------------------


def test_venv_is_made_by_the_python_given_and_pip_runs_only_when_a_source_changed(
        job: Job, fakes: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    team = tmp_path / "acme"
    (team / "acme").mkdir(parents=True)
    (team / "acme/__init__.py").write_text("PRICE = 9.99\n")
    (team / "build").mkdir()
    (team / "acme.egg-info").mkdir()
    job = Job(InstallOptions(root=job.options.root, packages=(str(team), "acme-extra==1.0")), job.tmp,
              python=fakes.python)
    venv.ensure_venv(job)
    venv_dir = Path(job.options.root) / "opt/trackline/venv"
    calls = fakes.calls()
    assert calls[2] == f"{fakes.python} -m venv {venv_dir}"
    assert calls[-1] == " ".join(venv.pip_command(
        venv_dir, f"{job.tmp}/source[requests]", [f"{job.tmp}/with-1", "acme-extra==1.0"], ""))
    assert sorted(p.name for p in (job.tmp / "with-1").iterdir()) == ["acme"]  # copied without build output
    assert sorted(p.name for p in team.iterdir()) == ["acme", "acme.egg-info", "build"]  # the team's tree as it was
    # The staged venv's scripts and pyvenv.cfg name its final place, not the staging tree.
    assert (venv_dir / "bin/trackline").read_text() == "#!/opt/trackline/venv/bin/python\n"
    assert str(venv_dir) not in (venv_dir / "pyvenv.cfg").read_text()
    assert capsys.readouterr().out.endswith(f"install: installed trackline and {team} acme-extra==1.0 into "
                                            "/opt/trackline/venv\n")

    venv.ensure_venv(job)
    assert not [call for call in fakes.calls() if " -m " in call]  # the stamp matched: no venv, no pip
    (team / "acme/__init__.py").write_text("PRICE = 19.99\n")
    venv.ensure_venv(job)
    assert any(" -m pip install " in call for call in fakes.calls())


def test_pip_installs_offline_from_a_wheelhouse(tmp_path: Path) -> None:
    command = venv.pip_command(tmp_path / "venv", "trackline[requests]", ["acme-1.0-py3-none-any.whl"], "/w")
    assert command == [f"{tmp_path}/venv/bin/python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                       "--no-cache-dir", "--force-reinstall", "--no-index", "--find-links", "/w",
                       "trackline[requests]", "acme-1.0-py3-none-any.whl"]


def test_a_wheelhouse_without_wheels_is_refused(job: Job, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    job = Job(InstallOptions(root=job.options.root, wheelhouse=str(wheels)), job.tmp, python=job.python)
    with pytest.raises(Failure, match="no wheels"):
        venv.source_stamp(job, "")
    (wheels / "b-1.whl").write_bytes(b"b")
    (wheels / "A-1.whl").write_bytes(b"a")
    first = venv.source_stamp(job, "")
    assert first != venv.source_stamp(job, ",celery")
    (wheels / "b-1.whl").write_bytes(b"B")
    assert venv.source_stamp(job, "") != first


def test_tree_stamp_is_what_the_bash_installer_wrote(tmp_path: Path) -> None:
    """The stamp's text is the one of `find ... | LC_ALL=C sort | xargs sha256sum`, so that a venv installed by
    the bash installer is not reinstalled by this one."""
    tree = tmp_path / "tree"
    for name in ("a.py", "B.py", "pkg/m.py", "pkg/__pycache__/m.pyc", "x.egg-info/PKG-INFO", "build/lib/a.py",
                 ".git/HEAD", "pkg/build/kept.py", "sp ace.py"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(name)
    (tree / "link.py").symlink_to("a.py")
    bash = subprocess.run(
        ["bash", "-c", "cd \"$1\" && find . -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' "
         "! -path './build/*' ! -path './.git/*' | LC_ALL=C sort | xargs -r -d '\\n' sha256sum", "-", str(tree)],
        capture_output=True, text=True, check=True)
    assert venv.tree_stamp(tree, ".") == bash.stdout
    assert venv.tree_stamp(REPO, "pyproject.toml").startswith(
        hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest() + "  pyproject.toml\n")


# -- the edge ------------------------------------------------------------------------------------------------------

EDGE = ["--role", "edge", "--upstream", "127.0.0.1:8001", "--upstream", "[::1]:8002", "--listen", "0.0.0.0:80"]
INCLUDES = "etc/nginx/trackline"
ACCESS_LOG = "var/log/nginx/trackline-access.log"


def test_edge_stages_the_server_and_the_includes_and_checks_them(root: Path, fakes: Fakes,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes, *EDGE, "--distrust-clients")
    assert files_under(root) == ["etc/nginx/conf.d/trackline.conf", f"{INCLUDES}/clients.conf",
                                 f"{INCLUDES}/listen.conf", f"{INCLUDES}/upstreams.conf", ACCESS_LOG]
    assert (root / "etc/nginx/conf.d/trackline.conf").read_bytes() == (REPO / "nginx/trackline.conf").read_bytes()
    assert (root / INCLUDES / "upstreams.conf").read_text() == "server 127.0.0.1:8001;\nserver [::1]:8002;\n"
    assert (root / INCLUDES / "listen.conf").read_text() == "listen 0.0.0.0:80 default_server;\n"
    assert (root / INCLUDES / "clients.conf").read_text() == "default on;\n"
    (check,) = fakes.calls("nginx")
    assert check.split()[1:4] == ["-t", "-q", "-e"] and check.endswith("/nginx-check/nginx.conf")
    out = capsys.readouterr().out
    assert f"install: made /{ACCESS_LOG} www-data:adm 0640\ninstall: nginx -t: the edge config is valid\n" \
           "install: --root: not reloading nginx\n" in out
    assert "install: note: no /etc/logrotate.d/nginx: /var/log/nginx/trackline-access.log needs rotation" in out

    before = snapshot(root)
    install(root, fakes, *EDGE, "--distrust-clients")
    assert snapshot(root) == before
    out = capsys.readouterr().out
    assert "installed" not in out and "reloading" not in out and "nginx -t: the edge config is valid" in out


def test_the_edge_log_is_made_www_data_adm_0640_before_nginx_opens_it(root: Path, fakes: Fakes,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """nginx (root, umask 022) would create it 0644 root:root; Debian's rotation makes it www-data:adm 0640."""
    log = root / ACCESS_LOG
    log.parent.mkdir(parents=True)
    log.write_text('{"old": "line"}\n')
    log.chmod(0o644)  # as nginx made it before
    install(root, fakes, *EDGE)
    status = log.stat()
    assert (status.st_mode & 0o7777, status.st_uid, status.st_gid) == (
        0o640, pwd.getpwnam("www-data").pw_uid, grp.getgrnam("adm").gr_gid)
    assert log.read_text() == '{"old": "line"}\n'  # an existing log is kept as it is
    assert "install: made /var/log/nginx/trackline-access.log www-data:adm 0640\n" in capsys.readouterr().out
    install(root, fakes, *EDGE)
    assert "made" not in capsys.readouterr().out
    log.unlink()
    log.symlink_to(root / "etc/shadow")
    with pytest.raises(Failure, match=r"^/var/log/nginx/trackline-access.log is a symbolic link: remove it"):
        install(root, fakes, *EDGE)
    assert not (root / "etc/shadow").exists()


def test_the_staged_check_points_the_server_s_paths_into_the_tree(job: Job, tmp_path: Path) -> None:
    host = job.host
    (host.path(layout.EDGE_CONF)).parent.mkdir(parents=True)
    host.path(layout.EDGE_CONF).write_text("include /etc/nginx/trackline/listen.conf;\n"
                                           "access_log /var/log/nginx/trackline-access.log;\n")
    scratch = tmp_path / "check"
    command = edge.check_command(host, scratch)
    assert command[1:] == ["-t", "-q", "-e", f"{scratch}/error.log", "-c", f"{scratch}/nginx.conf"]
    assert (scratch / "trackline.conf").read_text() == (f"include {job.options.root}/etc/nginx/trackline/listen.conf;\n"
                                                        f"access_log {scratch}/trackline-access.log;\n")
    assert f"include {scratch}/trackline.conf;" in (scratch / "nginx.conf").read_text()
    assert edge.check_command(layout.Host(), scratch)[1:] == ["-t", "-q"]  # on a host: its whole config


def test_a_config_nginx_refuses_puts_the_previous_files_back(root: Path, fakes: Fakes) -> None:
    install(root, fakes, *EDGE)
    before = snapshot(root, times=False)
    fakes.refuse('nginx: [emerg] host not found in upstream "no-such-host.invalid:8000"')
    with pytest.raises(Failure) as refused:
        install(root, fakes, "--role", "edge", "--upstream", "no-such-host.invalid:8000", "--listen", "0.0.0.0:81")
    assert str(refused.value) == ("nginx -t refused the edge config, the previous files are back in place:\n"
                                  'nginx: [emerg] host not found in upstream "no-such-host.invalid:8000"')
    assert snapshot(root, times=False) == before

    fresh = root.parent / "fresh"  # nothing was there before: nothing is left but the directories and the log,
    with pytest.raises(Failure):  # made empty before `nginx -t`, which would have created it itself
        install(fresh, fakes, *EDGE)
    assert files_under(fresh) == [ACCESS_LOG]


def test_a_duplicate_default_server_names_the_likely_culprit(root: Path, fakes: Fakes) -> None:
    fakes.refuse("nginx: [emerg] a duplicate default server for 0.0.0.0:80 in /etc/nginx/sites-enabled/default:22")
    with pytest.raises(Failure) as refused:
        install(root, fakes, *EDGE)
    assert str(refused.value).endswith(
        "default:22\nanother site is the default server on 0.0.0.0:80 (Debian's /etc/nginx/sites-enabled/default?): "
        "remove it, or choose another --listen")


def test_an_edited_edge_server_is_kept(root: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes, *EDGE)
    conf = root / "etc/nginx/conf.d/trackline.conf"
    conf.write_text(conf.read_text().replace("proxy_read_timeout 60s;", "proxy_read_timeout 90s;"))
    capsys.readouterr()
    install(root, fakes, *EDGE)
    assert "proxy_read_timeout 90s;" in conf.read_text()
    assert (root / "etc/nginx/conf.d/trackline.conf.dist").read_bytes() == (REPO / "nginx/trackline.conf").read_bytes()
    assert "kept your edited /etc/nginx/conf.d/trackline.conf; the new default is " \
           "/etc/nginx/conf.d/trackline.conf.dist" in capsys.readouterr().out


def test_a_staged_edge_needs_nginx_here(root: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    (fakes.dir / "nginx").unlink()
    monkeypatch.setattr(edge, "nginx_bin", lambda: str(fakes.dir / "nginx"))
    with pytest.raises(Failure, match=r"^nginx is needed to check the staged config: apt-get install nginx$"):
        install(root, fakes, *EDGE)
    assert not root.exists()


# -- log shipping and the log host -------------------------------------------------------------------------------


def shipper_conf(host: str, port: str) -> str:
    """/etc/trackline/rsyslog-ship.conf as --ship-to HOST:PORT --plain writes it for trackline-ship.service."""
    ship = ((REPO / "rsyslog/trackline-ship.conf").read_text().replace("@SHIP_TO_HOST@", host)
            .replace("@SHIP_TO_PORT@", port).replace("@TLS@", 'tls="off"'))
    return "".join([*(line + "\n" for line in (
        "# Written by scripts/install --ship-to from rsyslog/trackline-ship.conf; run by trackline-ship.service",
        "# (docs/log-host.md). Check with `rsyslogd -N1 -f /etc/trackline/rsyslog-ship.conf`.",
        'global(workDirectory="/var/lib/trackline-ship")', 'global(maxMessageSize="1049600")')), ship,
        rsyslog.ship_inputs(f"/var/log/trackline/{name}" for name in ("app.log", "access.log", "error.log",
                                                                      "worker.log"))])


def test_ship_to_stages_the_shipper_checked_once(root: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes, "--ship-to", "logs.example:10514", "--plain")
    assert not (root / "etc/rsyslog.d").exists()  # Debian's rsyslog reads none of trackline's logs
    assert (root / "etc/trackline/rsyslog-ship.conf").read_text() == shipper_conf("logs.example", "10514")
    assert (root / "etc/systemd/system/trackline-ship.service").read_bytes() == \
        (REPO / "systemd/trackline-ship.service").read_bytes()
    (check,) = fakes.calls("rsyslogd")
    assert check.split()[1:3] == ["-N1", "-f"] and check.split()[3].endswith("/rsyslog-work/rsyslog-ship.conf")
    assert capsys.readouterr().out.endswith("install: installed /etc/trackline/rsyslog-ship.conf\n"
                                            "install: --root: not restarting trackline-ship.service\n"
                                            "install: done\n")
    before = snapshot(root)
    install(root, fakes, "--ship-to", "logs.example:10514", "--plain")
    assert snapshot(root) == before and not fakes.calls("rsyslogd")


def test_a_snippet_rsyslogd_rejects_is_put_back(root: Path, fakes: Fakes) -> None:
    install(root, fakes, "--ship-to", "logs.example:10514", "--plain")
    before = snapshot(root, times=False)
    fakes.refuse("rsyslogd: invalid parameter 'windowsize2'\nrsyslogd: End of config validation run. Bye.")
    with pytest.raises(Failure) as refused:
        install(root, fakes, "--ship-to", "logs2.example:10514", "--plain")
    assert str(refused.value) == ("rsyslogd -N1 rejects /etc/trackline/rsyslog-ship.conf (left as before):\n"
                                  "rsyslogd: invalid parameter 'windowsize2'")
    assert snapshot(root, times=False) == before


def test_without_rsyslogd_a_staged_snippet_goes_unchecked(root: Path, fakes: Fakes, job: Job,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    rsyslog.install_checked(job, {"/etc/rsyslog.d/trackline-limits.conf": b"# limits\n"}, whole=False)
    assert capsys.readouterr().out.endswith("install: no rsyslogd here: /etc/rsyslog.d/trackline-limits.conf "
                                            "unchecked\n")


def test_a_word_left_in_a_snippet_is_refused(job: Job, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "rsyslog").mkdir(parents=True)
    (repo / "rsyslog/x.conf").write_text('target="@SHIP_TO_HOST@" port="@SHIP_TO_PORT@"\n')
    job = Job(job.options, job.tmp, repo=repo)
    assert rsyslog.render(job, "x.conf", SHIP_TO_HOST="a&b|c", SHIP_TO_PORT=1) == b'target="a&b|c" port="1"\n'
    with pytest.raises(Failure, match=r"^rsyslog/x.conf: a word was left unreplaced$"):
        rsyslog.render(job, "x.conf", SHIP_TO_HOST="a")


def test_loghost_stages_the_receiver_the_rules_and_the_command_but_no_service(root: Path, fakes: Fakes) -> None:
    install(root, fakes, "--role", "loghost", "--listen", "::1", "--sender", "web-1:10514", "--plain")
    snippet = (root / "etc/rsyslog.d/trackline-loghost.conf").read_text()
    assert 'name="web-1" address="::1" port="10514"' in snippet
    assert 'constant(value="/var/log/trackline-central/")' in snippet
    assert (root / "etc/logrotate.d/trackline-central").read_bytes() == \
        (REPO / "logrotate/trackline-central").read_bytes()
    assert (root / "usr/local/bin/trackline").exists() and (root / "opt/trackline/venv/bin/python").exists()
    assert not (root / "etc/systemd/system/trackline.service").exists() and not (root / "etc/trackline").exists()
    before = snapshot(root)
    install(root, fakes, "--role", "loghost", "--listen", "::1", "--sender", "web-1:10514", "--plain")
    assert snapshot(root) == before


# -- uninstall -----------------------------------------------------------------------------------------------------


def test_uninstall_removes_what_every_role_wrote(root: Path, fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    """Every role into one tree, then uninstall: the configuration and the logs stay until --purge."""
    install(root, fakes, "--ship-to", "logs.example:2514", "--plain")
    install(root, fakes, "--role", "worker")
    install(root, fakes, *EDGE)
    install(root, fakes, "--role", "loghost", "--sender", "web-1:2514", "--plain")
    edge_conf = root / "etc/nginx/conf.d/trackline.conf"
    edge_conf.write_text("# edited\n")
    install(root, fakes, *EDGE)  # puts trackline.conf.dist beside it
    (root / "var/log/trackline").mkdir(parents=True)
    (root / "var/log/trackline/app.log").write_text("{}\n")
    capsys.readouterr()
    uninstall.uninstall(parse_uninstall(["--root", str(root)]))
    conf = sorted(f"etc/trackline/{p.name}" for p in (REPO / "conf").glob("*.yaml"))
    assert files_under(root) == [*conf, ACCESS_LOG, "var/log/trackline/app.log"]  # logs stay
    assert not (root / "opt/trackline").exists()  # the prefix goes with the venv when nothing else is in it
    out = capsys.readouterr().out
    assert "uninstall: removed /etc/trackline/rsyslog-ship.conf\n" in out
    assert "uninstall: removed /etc/systemd/system/trackline-ship.service\n" in out
    assert out.endswith("uninstall: kept /etc/trackline and /var/log/trackline (delete them with --purge)\n")
    uninstall.uninstall(parse_uninstall(["--root", str(root), "--purge"]))
    assert files_under(root) == [ACCESS_LOG]  # nginx's, as Debian's nginx logs outlive a site


def test_uninstall_leaves_a_command_that_is_not_ours_and_a_prefix_in_use(root: Path, fakes: Fakes,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    install(root, fakes)
    (root / "usr/local/bin/trackline").write_text("#!/bin/sh\n")
    (root / "opt/trackline/data").mkdir()
    uninstall.uninstall(parse_uninstall(["--root", str(root)]))
    assert (root / "usr/local/bin/trackline").read_text() == "#!/bin/sh\n" and (root / "opt/trackline/data").is_dir()
    assert "uninstall: left /usr/local/bin/trackline alone: scripts/install did not put it there" in \
        capsys.readouterr().out
