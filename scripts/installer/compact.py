"""The log host's history (--role loghost): trackline-compact.service and its daily timer, which runs
`trackline compact` on the central tree after logrotate (docs/sql.md)."""

from __future__ import annotations

from .files import put
from .job import Job
from .layout import COMPACT_TIMER, COMPACT_UNIT, DEFAULT_PREFIX, UNIT_DIR
from .system import run, say


def unit_content(job: Job, unit: str) -> bytes:
    """systemd/UNIT with its paths under the --prefix."""
    text = (job.repo / "systemd" / unit).read_text()
    return text.replace(f"{DEFAULT_PREFIX}/", f"{job.options.prefix}/").encode()


def install_compaction(job: Job) -> None:
    """The service and the timer into /etc/systemd/system; where systemd runs, the timer enabled and started
    (a second run changes nothing)."""
    changed = [put(job.host, f"{UNIT_DIR}/{unit}", unit_content(job, unit)) for unit in (COMPACT_UNIT, COMPACT_TIMER)]
    if job.host.staged:
        say(f"--root: not enabling {COMPACT_TIMER} (on the target host: systemctl enable --now {COMPACT_TIMER})")
    elif job.host.systemd_running():
        if any(changed):
            run(["systemctl", "daemon-reload"])
        run(["systemctl", "enable", "--quiet", "--now", COMPACT_TIMER])
        say(f"{COMPACT_TIMER} enabled: trackline compact runs daily after logrotate")
    else:
        say(f"systemd is not running here; enable {COMPACT_TIMER} on its next boot")
