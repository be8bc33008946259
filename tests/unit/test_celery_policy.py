"""trackline.celery without a broker: a message's ID read with the HTTP policy, and the core without Celery."""

from __future__ import annotations

import logging

import pytest

from support.paths import CONF
from support.processes import run_python
from trackline.policy import DEFAULTS, TrackingPolicy

celery_module = pytest.importorskip("trackline.celery", reason="the celery extra is not installed")

POLICY = TrackingPolicy.from_config(DEFAULTS)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_valid_id_and_traceparent_are_kept_as_a_child_span() -> None:
    tracking_id, trace, notes = celery_module.start_task({"tracking_id": "req-1", "traceparent": TRACEPARENT},
                                                         POLICY)
    assert (tracking_id, trace.trace_id, trace.parent_id, notes) == (
        "req-1", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", [])
    assert trace.span_id != "b7ad6b7169203331"


@pytest.mark.parametrize("bad", ["bad id", "x" * 129, "tab\there", ""])
def test_a_malformed_id_is_replaced_with_a_warning(bad: str) -> None:
    tracking_id, _trace, notes = celery_module.start_task({"tracking_id": bad}, POLICY)
    assert tracking_id != bad and POLICY.pattern.fullmatch(tracking_id)
    level, message, extra = notes[0]
    assert (level, message) == (logging.WARNING, "replaced invalid tracking ID from the task message")
    assert extra["rejected_length"] == len(bad) and len(extra["rejected_tracking_id"]) <= 64 * 4
    # with a valid traceparent, the policy takes its trace-id instead, as for an HTTP request
    assert celery_module.start_task({"tracking_id": bad, "traceparent": TRACEPARENT}, POLICY)[0] == (
        "0af7651916cd43dd8448eb211c80319c")


def test_without_an_id_the_traceparent_gives_it_and_without_both_a_new_one_says_so() -> None:
    assert celery_module.start_task({"traceparent": TRACEPARENT}, POLICY)[::2] == (
        "0af7651916cd43dd8448eb211c80319c", [])
    tracking_id, trace, notes = celery_module.start_task({}, POLICY)
    assert POLICY.pattern.fullmatch(tracking_id) and trace.parent_id is None
    assert trace.trace_id == tracking_id.replace("-", "")  # a new trace takes a UUID4 ID's digits, as for a request
    assert notes == [(logging.INFO, "new tracking ID: the task was published outside a request", {})]


def test_an_invalid_traceparent_is_ignored_with_a_warning() -> None:
    tracking_id, trace, notes = celery_module.start_task({"tracking_id": "req-2", "traceparent": "00-zz"}, POLICY)
    assert tracking_id == "req-2" and trace.parent_id is None
    assert notes == [(logging.WARNING, "ignored invalid traceparent from the task message", {"rejected_length": 5})]


class LooksValid:
    """A header value that is no string but whose ``repr`` is a valid traceparent or tracestate."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


@pytest.mark.parametrize("bad", [12345, TRACEPARENT.encode(), [TRACEPARENT], {"value": TRACEPARENT},
                                 LooksValid(TRACEPARENT)])
def test_a_non_string_traceparent_is_invalid_whatever_its_repr_says(bad: object) -> None:
    tracking_id, trace, notes = celery_module.start_task({"tracking_id": "req-3", "traceparent": bad}, POLICY)
    assert tracking_id == "req-3" and trace.parent_id is None
    assert trace.trace_id != "0af7651916cd43dd8448eb211c80319c"  # a new trace, nothing taken from the value
    assert notes == [(logging.WARNING, "ignored invalid traceparent from the task message",
                      {"rejected_type": type(bad).__name__})]
    # nor does the policy take its trace-id for a missing tracking ID
    assert celery_module.start_task({"traceparent": bad}, POLICY)[0] != "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("bad", [7, b"vendor=value", LooksValid("vendor=value")])
def test_a_non_string_tracestate_is_dropped_as_an_invalid_one(bad: object) -> None:
    assert celery_module.start_task({"traceparent": TRACEPARENT, "tracestate": "vendor=value"},
                                    POLICY)[1].tracestate == "vendor=value"
    tracking_id, trace, notes = celery_module.start_task({"traceparent": TRACEPARENT, "tracestate": bad}, POLICY)
    assert (tracking_id, trace.parent_id, trace.tracestate, notes) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, [])


def test_an_eager_task_runs_in_the_callers_context_and_leaves_it_as_it_was() -> None:
    from celery import Celery

    from trackline import context
    from trackline.context import get_tracking_id

    app = celery_module.instrument(Celery("eager", set_as_current=False))
    app.conf.task_always_eager = True

    @app.task
    def seen() -> str | None:
        return get_tracking_id()

    token = context.enter("req-eager")
    try:
        assert (seen.delay().get(), seen.apply().get(), get_tracking_id()) == ("req-eager", "req-eager", "req-eager")
    finally:
        context.leave(token)


def test_the_core_imports_and_runs_jobs_in_process_without_celery(tmp_path) -> None:
    script = """
import sys
sys.modules["celery"] = None  # import celery now raises ImportError, as without the extra
from trackline.demo import create_app
from trackline.worker.settings import check_celery_config
import pathlib
client = create_app().test_client()
response = client.post("/api/jobs")
assert response.status_code == 202, response.data
assert client.get("/api/jobs/x").status_code == 404
problems, notes = check_celery_config(pathlib.Path(sys.argv[2]))
assert problems == [] and "Celery is not installed" in notes[0], notes
conf = pathlib.Path(sys.argv[1])
(conf / "app.yaml").write_text("JOBS_BROKER_URL: redis://127.0.0.1:6379/0\\n")
problems, notes = check_celery_config(conf)
assert problems == [f"{conf}/app.yaml: JOBS_BROKER_URL needs Celery: pip install 'trackline[celery]'"
                    " (scripts/install --role worker installs it)"], problems
print("ok")
"""
    done = run_python(script, str(tmp_path), str(CONF))
    assert done.stdout.strip() == "ok", done.stderr
