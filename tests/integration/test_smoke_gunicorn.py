"""The first thing to fail if trackline cannot run under gunicorn at all."""

from conftest import assert_contract


def test_generated_id_reaches_response_app_and_access_logs(server):
    response = server.get("/api/health")
    tracking_id = response.headers["X-Tracking-ID"]
    assert response.status == 200
    assert response.json() == {"code": 200, "msg": "GET /api/health success", "data": "OK"}
    server.stop()
    app_lines = [r for r in server.logs("app.log") if r["tracking_id"] == tracking_id]
    access_lines = [r for r in server.logs("access.log") if r["tracking_id"] == tracking_id]
    assert [r["message"] for r in app_lines] == ["Health check"]
    assert len(access_lines) == 1 and access_lines[0]["status_code"] == 200
    for name in ("app.log", "access.log", "error.log"):
        for record in server.logs(name):
            assert_contract(record)


def test_gunicorn_lines_name_gunicorns_code_not_its_logger_wrapper(server):
    server.stop()
    booting = [r for r in server.logs("error.log") if r["message"].startswith("Booting worker")]
    assert booting and all(r["loc"].startswith("arbiter.py:") and r["func"] == "spawn_worker" for r in booting)
    assert not [r for r in server.logs("error.log") if r["loc"].startswith("glogging.py:")]
