"""scripts/installer: the command lines (parsed and checked in one place), the exit statuses, the idempotent file
writes and their rollback, and the names install and uninstall share. Steps and roles: test_installer_steps.py."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer import cli, files, layout
from installer.options import Address, InstallOptions, parse_install, parse_uninstall
from installer.system import BadValue, Failure
from support.paths import REPO

EDGE = ["--role", "edge", "--upstream", "10.0.0.11:8000", "--listen", "0.0.0.0:80"]


def refusal(argv: list[str], tmp_path: Path) -> str:
    """The one line parse_install refuses ``argv`` (staged into tmp_path) with."""
    with pytest.raises(Failure) as refused:
        parse_install([*argv, "--root", str(tmp_path / "root")])
    return str(refused.value)


def test_defaults_are_the_web_role_under_opt_trackline(tmp_path: Path) -> None:
    parsed = parse_install(["--root", str(tmp_path / "root")])
    assert parsed == InstallOptions(root=str(tmp_path / "root"))
    assert (parsed.role, parsed.venv, parsed.listen, parsed.ship_to) == ("web", "/opt/trackline/venv", None, None)


def test_paths_are_made_absolute_and_the_prefix_normalized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheels").mkdir()
    (tmp_path / "acme").mkdir()
    parsed = parse_install(["--root", "root", "--prefix", "/srv/trackline/", "--wheelhouse", "wheels",
                            "--with", "acme", "--with", "acme-orders==1.4"])
    assert (parsed.root, parsed.wheelhouse) == (str(tmp_path / "root"), str(tmp_path / "wheels"))
    assert parsed.packages == (str(tmp_path / "acme"), "acme-orders==1.4")  # a requirement stays as it is
    assert parsed.venv == "/srv/trackline/venv"


def test_addresses_keep_their_text_and_lose_ipv6_brackets(tmp_path: Path) -> None:
    edge = parse_install([*EDGE, "--upstream", "[fd00::2]:8000", "--ship-to", "logs.example:2514", "--plain",
                          "--root", str(tmp_path)])
    assert edge.upstreams == (Address("10.0.0.11:8000", "10.0.0.11", 8000), Address("[fd00::2]:8000", "fd00::2", 8000))
    assert edge.listen == Address("0.0.0.0:80", "0.0.0.0", 80)
    assert edge.ship_to == Address("logs.example:2514", "logs.example", 2514)
    loghost = parse_install(["--role", "loghost", "--sender", "web-1:2514", "--plain", "--root", str(tmp_path)])
    assert loghost.listen == Address(layout.DEFAULT_LISTEN, "127.0.0.1", 0)
    assert loghost.senders == (Address("web-1:2514", "web-1", 2514),)
    assert parse_install(["--role", "loghost", "--listen", "[::1]", "--sender", "web-1:2514", "--plain",
                          "--root", str(tmp_path)]).listen == Address("[::1]", "::1", 0)


@pytest.mark.parametrize(("argv", "error"), [
    (["--role", "loadbalancer"], "unknown --role 'loadbalancer' (web, worker, edge or loghost)"),
    (["--prefix", "opt/trackline"], "--prefix must be an absolute path of letters, digits and / . _ - + @, not "
                                    "'opt/trackline'"),
    (["--role", "loghost", "--ship-to", "logs.example:2514"],
     "--ship-to is for the hosts that send (web, worker, edge), not the log host"),
    (["--listen", "0.0.0.0:80"], "--listen is for --role edge or loghost"),
    (["--role", "worker", "--listen", "0.0.0.0:80"], "--listen is for --role edge or loghost"),
    (["--upstream", "10.0.0.11:8000"], "--upstream, --listen and --distrust-clients are options of --role edge"),
    (["--distrust-clients"], "--upstream, --listen and --distrust-clients are options of --role edge"),
    (["--role", "worker", "--app", "acme:app"],
     "--app is an option of --role web; --upstream, --listen and --distrust-clients of --role edge"),
    (["--role", "worker", "--upstream", "10.0.0.11:8000"],
     "--app is an option of --role web; --upstream, --listen and --distrust-clients of --role edge"),
    (["--role", "loghost", "--app", "acme:app"],
     "--app is an option of --role web; --upstream and --distrust-clients of --role edge"),
    ([*EDGE, "--app", "acme:app"], "--prefix, --wheelhouse, --app and --with are options of --role web"),
    ([*EDGE, "--prefix", "/srv/trackline"], "--prefix, --wheelhouse, --app and --with are options of --role web"),
    ([*EDGE, "--with", "acme-orders"], "--prefix, --wheelhouse, --app and --with are options of --role web"),
    (["--role", "edge", "--listen", "0.0.0.0:80"],
     "--role edge needs at least one --upstream HOST:PORT (a trackline host)"),
    (["--role", "edge", "--upstream", "10.0.0.11:8000"],
     "--role edge needs --listen ADDR:PORT (where nginx takes clients, e.g. 0.0.0.0:80)"),
    (["--role", "edge", "--upstream", "10.0.0.11:8000;", "--listen", "0.0.0.0:80"],
     "--upstream must be HOST:PORT (or [IPv6]:PORT), not '10.0.0.11:8000;'"),
    (["--role", "edge", "--upstream", "10.0.0.11:8000", "--listen", "0.0.0.0:99999"],
     "--listen must be HOST:PORT (or [IPv6]:PORT), not '0.0.0.0:99999'"),
    (["--ship-to", "logs.example"], "--ship-to must be HOST:PORT (or [IPv6]:PORT), not 'logs.example'"),
    (["--ship-to", "logs.example:0"], "--ship-to must be HOST:PORT (or [IPv6]:PORT), not 'logs.example:0'"),
    (["--ship-to", "logs.example:65536"], "--ship-to must be HOST:PORT (or [IPv6]:PORT), not 'logs.example:65536'"),
    (["--ship-to", "_logs:2514"], "--ship-to must be HOST:PORT (or [IPv6]:PORT), not '_logs:2514'"),
    (["--ship-to", 'logs"x:2514'], "--ship-to must be HOST:PORT (or [IPv6]:PORT), not 'logs\"x:2514'"),
    (["--ship-to", "logs.example:2514"], "log shipping needs --tls-ca FILE --tls-cert FILE --tls-key FILE "
     "(docs/log-host.md), or --plain for RELP without TLS on a network that is yours"),
    (["--role", "loghost", "--sender", "web-1:2514"], "log shipping needs --tls-ca FILE --tls-cert FILE --tls-key "
     "FILE (docs/log-host.md), or --plain for RELP without TLS on a network that is yours"),
    (["--role", "loghost", "--plain"], "--role loghost needs --sender NAME:PORT for each host that ships to it"),
    (["--role", "loghost", "--plain", "--sender", "web_1:2514"], "--sender must be NAME:PORT with NAME the "
     "sender's certificate name (e.g. web-1.example.internal:2514), not 'web_1:2514'"),
    (["--role", "loghost", "--plain", "--sender", "web-1:2514", "--sender", "web-2:2514"],
     "each --sender needs a name and a port of its own"),
    (["--ship-to", "logs.example:2514", "--plain", "--tls-ca", "/etc/ca.pem"],
     "--plain is RELP without TLS: give it or the --tls-* files, not both"),
    (["--ship-to", "logs.example:2514", "--tls-ca", "/nonexistent/ca.pem", "--tls-cert", "/x", "--tls-key", "/y"],
     "--tls-ca '/nonexistent/ca.pem': No such file or directory"),
    (["--sender", "web-1:2514"], "--sender is an option of --role loghost"),
    (["--plain"], "--tls-ca, --tls-cert, --tls-key and --plain go with --ship-to or --role loghost"),
    (["--ship-to", "logs.example:2514", "--plain", "--tls-peer", "a b"],
     "--tls-peer must be a host name (the log host's certificate name), not 'a b'"),
    (["--role", "loghost", "--listen", "[::1]:10514"],
     "--listen for --role loghost is an address without a port (each --sender has its port), not '[::1]:10514'"),
])
def test_options_that_do_not_fit_get_one_line(argv: list[str], error: str, tmp_path: Path) -> None:
    assert refusal(argv, tmp_path) == error


PATH_RULE = "must be an absolute path of letters, digits and / . _ - + @, not "
HOST_RULE = ("HOST must be a host name (RFC 1123: dot-separated labels of letters, digits and inner hyphens) "
             "or an IP address")
WITH_RULE = ("--with must be a directory, a wheel or a requirement (not empty, no leading '-', no control "
             "character), not ")


@pytest.mark.parametrize("prefix", [
    '/opt/tl"; rm -rf /; "', "/opt/$(id)", "/opt/`id`", "/opt/a b", "/opt/tl\nexec /bin/sh", "/opt/%n",
    "/opt/a;b", "/opt/a\\b", "/opt/'q'", "/opt/caf\u00e9", "/opt/\x1b[2J", "/opt/${HOME}", "~/tl", "tl",
])
def test_a_prefix_that_sh_or_systemd_would_read_is_refused(prefix: str, tmp_path: Path) -> None:
    """--prefix goes into the unit's Exec lines and into the wrapper script root runs."""
    error = refusal(["--prefix", prefix], tmp_path)
    assert error == f"--prefix {PATH_RULE}{prefix!a}"
    assert error.isprintable() and error.isascii()  # one line, no byte a terminal would act on
    with pytest.raises(BadValue):
        parse_uninstall(["--prefix", prefix, "--root", str(tmp_path)])


def test_a_safe_prefix_is_normalized(tmp_path: Path) -> None:
    for given, kept in [("/srv/tl-2.1+b@x/", "/srv/tl-2.1+b@x"), ("//opt//tl/./x/", "/opt/tl/x")]:
        assert parse_install(["--prefix", given, "--root", str(tmp_path)]).prefix == kept


@pytest.mark.parametrize("given", ["/", "//", "/opt/../etc", "/opt/tl/.."])
def test_a_prefix_of_root_or_with_dot_dot_is_refused(given: str, tmp_path: Path) -> None:
    with pytest.raises(BadValue, match=r"--prefix must name a directory below / without '\.\.'"):
        parse_install(["--prefix", given, "--root", str(tmp_path)])


def test_a_root_outside_the_safe_characters_is_refused(tmp_path: Path) -> None:
    """A staging tree's paths go into the configs that `nginx -t` and `rsyslogd -N1` check."""
    root = str(tmp_path / "a;b")
    with pytest.raises(BadValue) as refused:
        parse_install(["--root", root])
    assert str(refused.value) == f"--root {PATH_RULE}{root!a}"


@pytest.mark.parametrize("value", ["a..b:80", "a-:80", "b.-a:80", "a.-b:80", "a_b:80", f"{'x' * 64}:80",
                                   f"{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 62}:80", "256.1.1.1:80", "1.2.3:80",
                                   "[1:2:3]:80", "[::1.2.3.256]:80"])
def test_a_host_that_is_no_rfc_1123_name_nor_an_address_is_refused(value: str, tmp_path: Path) -> None:
    for option in ("--upstream", "--ship-to"):
        assert refusal([*EDGE, option, value], tmp_path) == f"{option} {value!a}: {HOST_RULE}"


@pytest.mark.parametrize("value", ["a-b.example:80", f"{'x' * 63}.example:1", "10.0.0.11:65535", "[fd00::2]:8000",
                                   "[::ffff:10.0.0.1]:80", "localhost:8000", "a:80"])
def test_host_names_and_addresses_that_follow_the_rules_are_taken(value: str, tmp_path: Path) -> None:
    assert parse_install([*EDGE, "--upstream", value, "--root", str(tmp_path)]).upstreams[-1].text == value


@pytest.mark.parametrize("value", ["0.0.0.0:80\nlisten 1.2.3.4:81", "0.0.0.0:80 ssl", "[::1]:80;", "h:80\x1b"])
def test_an_address_with_syntax_in_it_is_refused_with_the_value_escaped(value: str, tmp_path: Path) -> None:
    error = refusal(["--role", "edge", "--upstream", "10.0.0.11:8000", "--listen", value], tmp_path)
    assert error == f"--listen must be HOST:PORT (or [IPv6]:PORT), not {value!a}" and error.isprintable()


@pytest.mark.parametrize("app", ["acme:app\nwsgi_app: evil:app", "acme:app\x1b[2J", "acme:app\u009b",
                                 "acme orders:app", "1acme:app", ":app", "acme:", "acme:caf\u00e9"])
def test_an_app_spec_outside_gunicorn_s_syntax_is_refused(app: str, tmp_path: Path) -> None:
    """--app goes into gunicorn.yaml, which `sudo trackline check-config` reads as root."""
    assert refusal(["--app", app], tmp_path) == \
        f"--app must be MODULE, MODULE:NAME or MODULE:CALL(...) in printable ASCII, not {app!a}"


def test_app_specs_in_gunicorn_s_syntax_are_taken(tmp_path: Path) -> None:
    for app in ("acme_orders", "acme_orders:create_app()", "acme.wsgi:make(name='x', debug=True)"):
        assert parse_install(["--app", app, "--root", str(tmp_path)]).app == app


@pytest.mark.parametrize("value", ["--index-url=http://pypi.invalid/simple", "-e", "-r/etc/shadow", "",
                                   "acme\nother", "acme\x1b[2J"])
def test_a_with_that_pip_would_take_for_an_option_is_refused(value: str, tmp_path: Path) -> None:
    """--with goes to the pip that root runs: a leading '-' would be one of pip's options."""
    assert refusal([f"--with={value}"], tmp_path) == f"{WITH_RULE}{value!a}"


def test_a_bad_value_exits_2_with_one_line_and_writes_nothing(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert cli.main(["install", "--root", str(root), "--prefix", "/opt/tl\n$(id)"]) == 2
    said = capsys.readouterr()
    assert (said.out, said.err) == ("", f"install: --prefix {PATH_RULE}'/opt/tl\\n$(id)'\n")
    assert cli.main(["install", "--root", str(root), *EDGE[:4], "--listen", "0.0.0.0:80", "--ship-to",
                     "logs..example:2514"]) == 2
    assert capsys.readouterr().err == f"install: --ship-to 'logs..example:2514': {HOST_RULE}\n"
    assert not root.exists()


def test_a_missing_wheelhouse_is_named(tmp_path: Path) -> None:
    assert refusal(["--wheelhouse", str(tmp_path / "wheels")], tmp_path) == \
        f"--wheelhouse '{tmp_path / 'wheels'}': no such directory"


def test_only_root_installs_on_the_host_itself(tmp_path: Path) -> None:
    with pytest.raises(Failure, match=r"^run as root \(or stage into a tree with --root DIR\)$"):
        parse_install([], euid=1000)
    assert parse_install(["--root", str(tmp_path)], euid=1000).root == str(tmp_path)
    assert parse_install([], euid=0).root == ""
    with pytest.raises(Failure, match=r"^run as root \(or give --root DIR\)$"):
        parse_uninstall(["--purge"], euid=1000)


@pytest.mark.parametrize(("argv", "error"), [
    (["--bogus"], "install: unrecognized arguments: --bogus"),
    (["--role"], "install: argument --role: expected one argument"),
    (["--dist"], "install: unrecognized arguments: --dist"),  # no abbreviations of --distrust-clients
    (["--root", ""], "install: argument --root: needs a directory"),
])
def test_usage_errors_exit_2_with_the_usage(argv: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_install(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(error + "\n") and "usage: scripts/install [--role web|worker]" in err


def test_help_is_the_usage_the_docs_point_to(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_install(["--help"])
    assert exited.value.code == 0
    told = capsys.readouterr().out
    for option in ("--role ROLE", "--prefix DIR", "--root DIR", "--wheelhouse DIR", "--app SPEC", "--with PKG",
                   "--upstream H:P", "--listen ADDR:PORT", "--distrust-clients", "--ship-to H:P"):
        assert f"\n  {option} " in told, option
    for role in ("web:", "edge:", "loghost:", "worker:"):
        assert role in told
    assert "scripts/install --role edge --upstream HOST:PORT" in told and "docs/deploy.md" in told
    with pytest.raises(SystemExit):
        parse_uninstall(["--help"])
    assert "--purge" in capsys.readouterr().out


def test_uninstall_options(tmp_path: Path) -> None:
    parsed = parse_uninstall(["--root", str(tmp_path), "--prefix", "/srv/tl/", "--purge"])
    assert (parsed.root, parsed.prefix, parsed.purge) == (str(tmp_path), "/srv/tl", True)
    with pytest.raises(BadValue, match=r"^--prefix must be an absolute path of .*, not 'srv'$"):
        parse_uninstall(["--prefix", "srv", "--root", str(tmp_path)])


def test_main_says_a_refusal_on_stderr_and_exits_1_before_touching_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install", "--role", "edge", "--root", str(tmp_path / "root"), "--listen", "0.0.0.0:80"]) == 1
    said = capsys.readouterr()
    assert (said.out, said.err) == ("", "install: --role edge needs at least one --upstream HOST:PORT "
                                        "(a trackline host)\n")
    assert not (tmp_path / "root").exists()
    assert cli.main(["uninstall", "--prefix", "relative", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("uninstall: --prefix must be an absolute path of letters, digits and "
                                       "/ . _ - + @, not 'relative'\n")
    assert cli.main([]) == cli.main(["setup"]) == 2


@pytest.mark.parametrize("script", ["install", "uninstall"])
def test_the_scripts_run_the_installer_with_debian_s_python(script: str, tmp_path: Path) -> None:
    """scripts/install and scripts/uninstall are thin: their options, exit statuses and messages are the
    installer's (from any working directory, through a symlink too)."""
    link = tmp_path / script
    link.symlink_to(REPO / "scripts" / script)
    if not os.access(layout.PYTHON, os.X_OK):
        pytest.skip(f"no {layout.PYTHON}")
    done = subprocess.run([str(link), "--help"], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: scripts/{script} ")
    done = subprocess.run([str(link), "--bogus"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"{script}: unrecognized arguments: --bogus\n")


def test_the_installer_imports_only_the_standard_library() -> None:
    """Debian's python3 runs it before any venv exists."""
    for module in (REPO / "scripts/installer").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in {*sys.stdlib_module_names, "installer"}, f"{module.name}: {name}"


# -- files: idempotent writes, kept configuration, rollback ---------------------------------------------------------


def state(path: Path) -> tuple[bytes, int, int, int]:
    """A file's content, permission bits, inode and modification time."""
    info = path.stat()
    return path.read_bytes(), info.st_mode & 0o7777, info.st_ino, info.st_mtime_ns


def test_put_writes_once_with_its_mode_and_parents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = layout.Host(str(tmp_path))
    assert files.put(host, "/usr/local/bin/tool", b"#!/bin/sh\n", 0o755)
    assert capsys.readouterr().out == "install: installed /usr/local/bin/tool\n"
    for directory in ("usr", "usr/local", "usr/local/bin"):
        assert (tmp_path / directory).stat().st_mode & 0o777 == 0o755
    before = state(tmp_path / "usr/local/bin/tool")
    assert before[:2] == (b"#!/bin/sh\n", 0o755)
    assert not files.put(host, "/usr/local/bin/tool", b"#!/bin/sh\n", 0o755)
    assert state(tmp_path / "usr/local/bin/tool") == before and capsys.readouterr().out == ""  # not even a timestamp
    (tmp_path / "usr/local/bin/tool").chmod(0o700)
    assert files.put(host, "/usr/local/bin/tool", b"#!/bin/sh\n", 0o755)  # a mode is part of the file
    assert state(tmp_path / "usr/local/bin/tool")[1] == 0o755
    assert sorted(p.name for p in (tmp_path / "usr/local/bin").iterdir()) == ["tool"]  # no temporary file left


def test_put_config_keeps_an_edited_file_and_puts_the_default_beside_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host, path = layout.Host(str(tmp_path)), "/etc/trackline/logging.yaml"
    conf = tmp_path / path.lstrip("/")
    files.put_config(host, path, b"level: INFO\n")
    assert conf.read_bytes() == b"level: INFO\n" and "installed /etc/trackline/logging.yaml" in capsys.readouterr().out
    files.put_config(host, path, b"level: INFO\n")
    assert capsys.readouterr().out == ""
    conf.write_bytes(b"level: WARNING\n")
    files.put_config(host, path, b"level: INFO\n")
    assert conf.read_bytes() == b"level: WARNING\n"
    assert (tmp_path / "etc/trackline/logging.yaml.dist").read_bytes() == b"level: INFO\n"
    assert capsys.readouterr().out == (
        "install: kept your edited /etc/trackline/logging.yaml; the new default is /etc/trackline/logging.yaml.dist"
        " (compare: diff /etc/trackline/logging.yaml /etc/trackline/logging.yaml.dist)\n")
    dist = state(tmp_path / "etc/trackline/logging.yaml.dist")
    files.put_config(host, path, b"level: INFO\n")
    assert state(tmp_path / "etc/trackline/logging.yaml.dist") == dist  # said again, written once


def test_backup_puts_back_what_was_there_and_removes_what_was_not(tmp_path: Path) -> None:
    host = layout.Host(str(tmp_path / "root"))
    old = tmp_path / "root/etc/a.conf"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old\n")
    old.chmod(0o640)
    before = state(old)
    backup = files.Backup(host, tmp_path / "store")
    backup.save("/etc/a.conf", "/etc/new/b.conf")
    files.put(host, "/etc/a.conf", b"new\n")
    files.put(host, "/etc/new/b.conf", b"new\n")
    backup.restore()
    assert state(old)[:2] == before[:2] and old.stat().st_mtime_ns == before[3]
    assert not (tmp_path / "root/etc/new/b.conf").exists()


# -- the names install and uninstall share ---------------------------------------------------------------------------


def test_host_maps_paths_into_the_staging_tree(tmp_path: Path) -> None:
    assert layout.Host().path(layout.COMMAND) == Path("/usr/local/bin/trackline") and not layout.Host().staged
    staged = layout.Host(str(tmp_path))
    assert staged.path(layout.EDGE_CONF) == tmp_path / "etc/nginx/conf.d/trackline.conf" and staged.staged
    assert not staged.systemd_running()  # never systemctl in a staging tree


def test_layout_is_the_one_place_for_the_shared_names() -> None:
    """Every other module takes the host's paths from layout, so that uninstall removes exactly what install
    writes: no string in their code (docstrings and help texts aside) names one."""
    host_paths = ("/etc/", "/usr/local/", "/var/log/", "/opt/", "/run/trackline")
    for module in (REPO / "scripts/installer").glob("*.py"):
        if module.name in ("layout.py", "options.py"):  # options: the --help text names the paths for people
            continue
        tree = ast.parse(module.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                assert not node.value.startswith(host_paths), f"{module.name}: {node.value!r}: use layout"
    assert layout.EDGE_FILES[0] == layout.EDGE_CONF and len(layout.EDGE_FILES) == 4
    assert set(layout.UNITS) == {p.name for p in (REPO / "systemd").glob("*.service")}
    assert set(layout.SNIPPETS) == {p.name for p in (REPO / "rsyslog").glob("*.conf")}
