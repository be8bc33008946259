"""scripts/install --role edge on a real Debian layout under a real systemd: nginx -t on the whole nginx config,
reload only when nginx runs, a refused config rolled back, Debian's logrotate rules reopening the edge's log.

systemd boots as PID 1 of new namespaces on an overlay of / (tests/support/sandbox.py), never on the real root.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.edge import require_nginx
from support.paths import REPO
from support.sandbox import CARRIED, Sandbox
from support.staging import booted, require_sandbox, sandbox_get
from support.waiting import wait_until

INSTALL = str(CARRIED / "repo" / "scripts" / "install")
ACCESS_LOG = "/var/log/nginx/trackline-access.log"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Sandbox]:
    """A booted systemd on an overlay of / with the project's scripts and nginx config copied in."""
    require_nginx()
    require_sandbox({"logrotate": "logrotate"})
    carry = tmp_path / "carry"
    for part in ("scripts", "nginx"):
        shutil.copytree(REPO / part, carry / "repo" / part)
    with booted(tmp_path, carry) as sandbox:
        # A container image's policy-rc.d forbids every invoke-rc.d action (logrotate's `invoke-rc.d nginx
        # rotate`); a real host has none. Removed in the overlay only.
        sandbox.run(["rm", "-f", "/usr/sbin/policy-rc.d"])
        yield sandbox


def answers_502(box: Sandbox, port: int, tracking_id: str) -> bool:
    status, headers, body = sandbox_get(box, f"http://127.0.0.1:{port}/api/names", tracking_id, check=False)
    if status == 0:
        return False
    assert (status, headers["x-tracking-id"]) == (502, tracking_id)
    assert json.loads(body) == {"code": 502, "msg": "bad gateway: no trackline host answered",
                                "data": {"tracking_id": tracking_id}}
    return True


def edge_lines(box: Sandbox, path: str = ACCESS_LOG) -> list[dict[str, object]]:
    return [json.loads(line) for line in box.run(["cat", path]).stdout.splitlines()]


def nginx_processes(box: Sandbox) -> tuple[int, set[int]]:
    """systemd's nginx: its master's PID and its children's (the workers of every generation still alive)."""
    main = int(box.run(["systemctl", "show", "--property=MainPID", "--value", "nginx"]).stdout)
    assert main, "nginx is not running"
    return main, set(map(int, box.run(["cat", f"/proc/{main}/task/{main}/children"]).stdout.split()))


def wait_reloaded(box: Sandbox, workers_before: set[int]) -> None:
    """Wait until nginx has done the reload asked for: `systemctl reload nginx` returns once nginx's HUP is sent.

    The master then starts new workers, pauses 100 ms, retires the old ones, and only after that handles a USR1
    that came meanwhile: a request made right after a rotation that overlaps a reload is logged to the renamed file.
    """
    wait_until(lambda: (workers := nginx_processes(box)[1]) and not workers & workers_before,
               "nginx's reload (new workers, the old ones gone)")


# Prints "PID old" or "PID new" for each process ($2...) holding the rotated ($1.1) or the new ($1) file open.
_HOLDING = r"""
old=$(stat -c %d:%i "$1.1") new=$(stat -c %d:%i "$1"); shift
for pid; do
    for fd in /proc/"$pid"/fd/*; do
        case $(stat -L -c %d:%i "$fd" 2>/dev/null) in "$old") echo "$pid old" ;; "$new") echo "$pid new" ;; esac
    done
done
"""


def reopened(box: Sandbox, path: str) -> bool:
    """Whether every nginx process has the new ``path`` open and none the rotated ``path``.1 any more."""
    main, workers = nginx_processes(box)
    holding = box.run(["sh", "-c", _HOLDING, "sh", path, str(main), *map(str, workers)]).stdout.split("\n")
    return {f"{pid} new" for pid in (main, *workers)} == set(holding) - {""}


def owner_and_mode(box: Sandbox, path: str = ACCESS_LOG) -> str:
    return box.run(["stat", "-c", "%U:%G %a", path]).stdout.strip()


def install(box: Sandbox, listen: str, check: bool = True) -> tuple[int, str, str]:
    done = box.run([INSTALL, "--role", "edge", "--upstream", "127.0.0.1:9", "--listen", listen], check=check,
                   timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_install_reload_refuse_and_rotate_with_debian_s_nginx_under_systemd(box: Sandbox) -> None:
    # Installed while nginx does not run: checked with the host's whole config, nothing reloaded.
    _, out, _ = install(box, "127.0.0.1:8080")
    assert "install: nginx -t: the edge config is valid" in out
    assert "install: nginx is not running; start it with: systemctl enable --now nginx" in out
    assert "install: made /var/log/nginx/trackline-access.log www-data:adm 0640" in out
    box.run(["systemctl", "start", "nginx"], timeout=60)
    wait_until(lambda: answers_502(box, 8080, "sandbox-8080"), "the edge on 127.0.0.1:8080")  # no app: a 502
    # Debian's nginx.service runs with systemd's umask 022, which would make a new log 0644: the log is the
    # installer's, www-data:adm 0640, from its first line.
    wait_until(lambda: edge_lines(box), "the edge's first line")
    assert owner_and_mode(box) == "www-data:adm 640"

    # Installed again with another address while nginx runs: reloaded, the new address answers.
    workers = nginx_processes(box)[1]
    _, out, _ = install(box, "127.0.0.1:8081")
    assert "install: nginx reloaded" in out
    wait_reloaded(box, workers)
    wait_until(lambda: answers_502(box, 8081, "sandbox-8081"), "the reloaded edge on 127.0.0.1:8081")
    assert not install(box, "127.0.0.1:8081")[1].count("reloaded")  # nothing changed: no reload

    # Debian's default site is the default server on port 80: nginx -t refuses, the previous files come back.
    code, _, err = install(box, "0.0.0.0:80", check=False)
    assert code == 1
    assert "install: nginx -t refused the edge config, the previous files are back in place:" in err
    assert "a duplicate default server for 0.0.0.0:80" in err
    assert "remove it, or choose another --listen" in err
    assert box.run(["cat", "/etc/nginx/trackline/listen.conf"]).stdout == "listen 127.0.0.1:8081 default_server;\n"
    workers = nginx_processes(box)[1]
    box.run(["systemctl", "reload", "nginx"], timeout=60)
    wait_reloaded(box, workers)  # else the rotation below can overlap the reload
    assert answers_502(box, 8081, "sandbox-after-refusal")

    # The daily rotation as Debian's rules run it: renamed, then `invoke-rc.d nginx rotate` (USR1) reopens it.
    # The USR1 is handled after start-stop-daemon returns: wait until every nginx process holds the new file (with
    # no reload in flight, only the USR1 makes them reopen it), then the next line must be the new file's first.
    box.run(["logrotate", "--force", "/etc/logrotate.d/nginx"], timeout=60)
    wait_until(lambda: reopened(box, ACCESS_LOG), f"every nginx process to reopen {ACCESS_LOG} (USR1)")
    assert answers_502(box, 8081, "sandbox-rotated")
    wait_until(lambda: [r["tracking_id"] for r in edge_lines(box)] == ["sandbox-rotated"], "the line in the new file")
    before = [r["tracking_id"] for r in edge_lines(box, ACCESS_LOG + ".1")]
    assert owner_and_mode(box) == owner_and_mode(box, ACCESS_LOG + ".1") == "www-data:adm 640"
    assert "sandbox-8080" in before and "sandbox-after-refusal" in before
    box.run(["systemctl", "stop", "nginx"], timeout=60)
