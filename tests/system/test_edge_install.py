"""scripts/install --role edge --root: the staged nginx config passes `nginx -t`, a second run changes nothing,
a config nginx refuses leaves the previous files in place, bad options get one clear line."""

from __future__ import annotations

import grp
import pwd
import socket
import subprocess
from pathlib import Path

import pytest

from support.edge import EDGE_CONF, Edge, install_edge, require_nginx
from support.http import request
from support.paths import INSTALL, REPO, UNINSTALL
from support.staging import snapshot
from support.waiting import wait_until

UPSTREAMS = ["10.0.0.11:8000", "10.0.0.12:8000"]
INCLUDES = Path("etc/nginx/trackline")
ACCESS_LOG = "var/log/nginx/trackline-access.log"


@pytest.fixture
def staged(tmp_path: Path) -> Path:
    require_nginx()
    root = tmp_path / "root"
    install_edge(root, ["127.0.0.1:8001", "127.0.0.1:8002"], "0.0.0.0:80")
    return root


def test_install_stages_the_shipped_config_and_the_host_s_includes(staged: Path) -> None:
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == [
        EDGE_CONF, f"{INCLUDES}/clients.conf", f"{INCLUDES}/listen.conf", f"{INCLUDES}/upstreams.conf", ACCESS_LOG]
    assert (staged / EDGE_CONF).read_bytes() == (REPO / "nginx/trackline.conf").read_bytes()
    assert (staged / INCLUDES / "upstreams.conf").read_text() == "server 127.0.0.1:8001;\nserver 127.0.0.1:8002;\n"
    assert (staged / INCLUDES / "listen.conf").read_text() == "listen 0.0.0.0:80 default_server;\n"
    assert (staged / INCLUDES / "clients.conf").read_text() == "default off;\n"
    for path in staged.rglob("*"):
        want = 0o755 if path.is_dir() else 0o640 if path == staged / ACCESS_LOG else 0o644
        assert path.stat().st_mode & 0o777 == want, path


def test_nginx_t_accepts_the_staged_config(tmp_path: Path) -> None:
    edge = Edge(tmp_path, ["127.0.0.1:8001"], options=("--distrust-clients",))
    config = edge.write_config()  # stages with scripts/install, then wraps it with local paths
    assert (tmp_path / "root" / INCLUDES / "clients.conf").read_text() == "default on;\n"
    done = subprocess.run([require_nginx(), "-t", "-e", str(tmp_path / "error.log"), "-c", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_the_edge_log_is_www_data_adm_0640_from_its_first_line(tmp_path: Path) -> None:
    """nginx runs as root with umask 022: the file it would create is 0644. The installer makes it first."""
    refusing = socket.socket()  # bound, never listening: connections to it are refused, its port stays ours
    refusing.bind(("127.0.0.1", 0))
    edge = Edge(tmp_path, [f"127.0.0.1:{refusing.getsockname()[1]}"])
    edge.write_config()
    assert edge.access_log.read_bytes() == b""  # there before nginx ever ran
    edge.start()
    try:
        assert request(f"http://127.0.0.1:{edge.port}/api/names", headers={"X-Tracking-ID": "first-line"}).status == 502
        wait_until(lambda: [r["tracking_id"] for r in edge.logs()] == ["first-line"], "the edge's first line")
    finally:
        assert edge.stop() == 0
        refusing.close()
    status = edge.access_log.stat()
    assert status.st_mode & 0o7777 == 0o640
    assert (status.st_uid, status.st_gid) == (pwd.getpwnam("www-data").pw_uid, grp.getgrnam("adm").gr_gid)


def test_a_second_install_changes_nothing(staged: Path) -> None:
    before = snapshot(staged)
    again = install_edge(staged, ["127.0.0.1:8001", "127.0.0.1:8002"], "0.0.0.0:80")
    assert snapshot(staged) == before
    assert "installed" not in again.stdout
    assert "nginx -t: the edge config is valid" in again.stdout


def test_new_options_rewrite_only_the_includes_they_change(staged: Path) -> None:
    before = snapshot(staged)
    changed = install_edge(staged, UPSTREAMS, "0.0.0.0:80")
    assert changed.stdout.count("installed ") == 1 and "installed /etc/nginx/trackline/upstreams.conf" in changed.stdout
    after = snapshot(staged)
    assert {name for name in after if after[name] != before[name]} == {f"{INCLUDES}/upstreams.conf"}


def run_install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INSTALL), *args], capture_output=True, text=True, timeout=120)


def test_a_config_nginx_refuses_leaves_the_previous_files(staged: Path) -> None:
    before = snapshot(staged)
    refused = run_install("--role", "edge", "--root", str(staged), "--upstream", "no-such-host.invalid:8000",
                          "--listen", "0.0.0.0:80")
    assert refused.returncode == 1
    assert "install: nginx -t refused the edge config, the previous files are back in place:" in refused.stderr
    assert 'host not found in upstream "no-such-host.invalid:8000"' in refused.stderr
    assert snapshot(staged) == before


@pytest.mark.parametrize(("args", "error"), [
    (["--listen", "0.0.0.0:80"], "install: --role edge needs at least one --upstream HOST:PORT (a trackline host)"),
    (["--upstream", "10.0.0.11:8000"], "install: --role edge needs --listen ADDR:PORT (where nginx takes clients, "
                                       "e.g. 0.0.0.0:80)"),
    (["--upstream", "10.0.0.11:8000;", "--listen", "0.0.0.0:80"],
     "install: --upstream must be HOST:PORT (or [IPv6]:PORT), not '10.0.0.11:8000;'"),
    (["--upstream", "10.0.0.11:8000", "--listen", "0.0.0.0:99999"],
     "install: --listen must be HOST:PORT (or [IPv6]:PORT), not '0.0.0.0:99999'"),
])
def test_bad_edge_options_get_one_clear_line(tmp_path: Path, args: list[str], error: str) -> None:
    done = run_install("--role", "edge", "--root", str(tmp_path / "root"), *args)
    assert (done.returncode, done.stderr) == (2 if "must be HOST:PORT" in error else 1, error + "\n")
    assert not (tmp_path / "root").exists()


def test_edge_options_are_refused_for_the_web_role(tmp_path: Path) -> None:
    done = run_install("--root", str(tmp_path / "root"), "--upstream", "10.0.0.11:8000")
    assert (done.returncode, done.stderr) == (1, "install: --upstream, --listen and --distrust-clients are options of "
                                                 "--role edge\n")
    done = run_install("--role", "edge", "--root", str(tmp_path / "root"), "--upstream", "10.0.0.11:8000",
                       "--listen", "0.0.0.0:80", "--wheelhouse", str(tmp_path))
    assert (done.returncode, done.stderr) == (1, "install: --prefix, --wheelhouse, --app and --with are options of "
                                                 "--role web\n")
    done = run_install("--role", "loadbalancer", "--root", str(tmp_path / "root"))
    assert (done.returncode, done.stderr) == (1, "install: unknown --role 'loadbalancer' (web, worker, edge or "
                                                 "loghost)\n")


def test_an_edited_edge_config_is_kept_and_the_new_default_goes_beside_it(staged: Path) -> None:
    conf = staged / EDGE_CONF
    conf.write_text(conf.read_text().replace("proxy_read_timeout 60s;", "proxy_read_timeout 90s;"))
    edited = conf.read_bytes()
    told = install_edge(staged, ["127.0.0.1:8001", "127.0.0.1:8002"], "0.0.0.0:80")
    assert conf.read_bytes() == edited
    assert (staged / f"{EDGE_CONF}.dist").read_bytes() == (REPO / "nginx/trackline.conf").read_bytes()
    assert "kept your edited /etc/nginx/conf.d/trackline.conf; the new default is " \
           "/etc/nginx/conf.d/trackline.conf.dist" in told.stdout


def test_uninstall_removes_the_edge_files(staged: Path) -> None:
    done = subprocess.run([str(UNINSTALL), "--root", str(staged)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (staged / EDGE_CONF).exists() and not (staged / INCLUDES).exists()
