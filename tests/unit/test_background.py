"""trackline.background: jobs carry their request's context, are waited for, and are logged when abandoned."""

from __future__ import annotations

import threading
import time

from support.logs import LogReader
from trackline import background, context
from trackline.context import get_tracking_id


def test_waiting_returns_once_the_jobs_end_and_their_lines_carry_the_starting_context(logged: LogReader) -> None:
    token = context.enter("request-1")
    seen: list[str | None] = []
    background.start_job("quick", lambda: (time.sleep(0.2), seen.append(get_tracking_id())))
    context.leave(token)
    ticks: list[float] = []
    assert background.wait_for_jobs(time.monotonic() + 30, tick=lambda: ticks.append(time.monotonic())) == []
    assert seen == ["request-1"] and ticks  # the heartbeat went on while it waited
    assert background.running_jobs() == []


def test_a_job_still_running_at_the_deadline_is_logged_as_abandoned_with_its_id(logged: LogReader) -> None:
    release = threading.Event()
    token = context.enter("request-2")
    try:
        background.start_job("slow", release.wait, 30)
    finally:
        context.leave(token)
    try:
        [job] = background.wait_for_jobs(time.monotonic() + 0.3)
        assert job.job_id == "slow"
    finally:
        release.set()
    [line] = [r for r in logged() if r["message"].startswith("job abandoned")]
    assert (line["level"], line["job_id"], line["tracking_id"]) == ("ERROR", "slow", "request-2")
    assert background.wait_for_jobs(time.monotonic() + 30) == []  # it ended after all


def test_a_job_that_raises_is_logged_with_its_id_and_is_no_longer_running(logged: LogReader) -> None:
    background.start_job("broken", lambda: 1 / 0)
    assert background.wait_for_jobs(time.monotonic() + 30) == []
    [line] = [r for r in logged() if r["message"] == "job failed"]
    assert line["job_id"] == "broken" and "ZeroDivisionError" in line["exc_info"]
