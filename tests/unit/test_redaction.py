"""trackline.redaction: listed query parameters and headers never reach a line; app.yaml's keys checked; the
access sample; nginx's and conf/app.yaml's lists equal the default."""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from support.paths import CONF
from trackline import context, redaction
from trackline.appconfig import AppConfig
from trackline.config import ConfigError
from trackline.logs import TrackingIdFilter
from trackline.propagation import outgoing_call
from trackline.redaction import DEFAULT_HEADERS, DEFAULT_QUERY, MARKER, Redactor
from trackline.server.access import AccessSample, access_fields

R = MARKER
NGINX_CONF = CONF.parent / "nginx" / "trackline.conf"


@pytest.fixture
def default_redactor() -> Iterator[None]:
    """The process's redactor is the default one during the test, and is put back after it."""
    before = redaction.active()
    redaction.configure(Redactor())
    yield
    redaction.configure(before)


@pytest.mark.parametrize(("query", "logged"), [
    ("", ""),
    ("a=1&b=two", "a=1&b=two"),
    ("token=abc", f"token={R}"),
    ("a=1&Token=x&b=%20y+z&PASSWORD=p&c", f"a=1&Token={R}&b=%20y+z&PASSWORD={R}&c"),  # case; the rest as it was
    ("code=1&code=2&x=code=3", f"code={R}&code={R}&x=code=3"),  # every occurrence; a value that looks like one
    ("t%6Fken=s&api%5Fkey=k", f"t%6Fken={R}&api%5Fkey={R}"),  # names compared decoded
    ("token=&code&secret", "token=&code&secret"),  # nothing to hide: no value
    ("tokens=1&my_token=2&access_token=3", f"tokens=1&my_token=2&access_token={R}"),  # whole names only
    ("signature=a=b=c&apikey=%00%ff", f"signature={R}&apikey={R}"),
    ("&&token=x&&", f"&&token={R}&&"),
])
def test_the_default_list_redacts_values_and_keeps_the_rest_byte_for_byte(query: str, logged: str) -> None:
    assert Redactor().query(query) == logged


def test_a_query_without_a_listed_name_is_returned_as_it_is() -> None:
    query = "page=2&sort=name&q=%E4%BD%A0"
    assert Redactor().query(query) is query


def test_a_custom_list_replaces_the_default() -> None:
    custom = Redactor(["Session_ID"], ["X-Session"])
    assert custom.query("token=visible&session_id=s&SESSION_ID=t") == f"token=visible&session_id={R}&SESSION_ID={R}"
    assert custom.headers({"Authorization": "Bearer b", "x-session": "s"}) == {"Authorization": "Bearer b",
                                                                              "x-session": R}
    assert Redactor([], []).query("token=x") == "token=x"


def test_urls_paths_and_referers_redact_after_the_first_question_mark() -> None:
    redactor = Redactor()
    assert redactor.url("/a?b=1&token=t#code=frag") == f"/a?b=1&token={R}#code=frag"
    assert redactor.url("https://u@h.example/p?api_key=k") == f"https://u@h.example/p?api_key={R}"
    assert redactor.url("/plain/token=1") == "/plain/token=1"  # a path segment is not a parameter (a limit)


def test_headers_as_a_mapping_or_pairs() -> None:
    redactor = Redactor()
    assert redactor.headers({"COOKIE": "c", "Accept": "a"}) == {"COOKIE": R, "Accept": "a"}
    assert redactor.headers([("set-cookie", "c"), ("X-Api-Key", "k"), ("Host", "h")]) == [
        ("set-cookie", R), ("X-Api-Key", R), ("Host", "h")]
    unchanged = {"Accept": "a"}
    assert redactor.headers(unchanged) is unchanged


def record_with(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "calling %s for %s", ("/x?token=t&a=1", 7), None)
    record.__dict__.update(extra)
    return record


def test_the_filter_redacts_extra_fields_named_like_secrets_urls_or_headers(default_redactor: None) -> None:
    headers = {"Authorization": "Bearer b", "Accept": "*/*"}
    record = record_with(url="http://h/p?password=p&page=1", Authorization="Bearer b", x_api_key="k",
                         set_cookie="s=1", token="t", headers=headers, query_string="code=c&a=b",
                         referer="http://r/?signature=s", user_id=7, note="token=free-text")
    assert TrackingIdFilter().filter(record)
    assert (record.url, record.Authorization, record.x_api_key, record.set_cookie, record.token) == (
        f"http://h/p?password={R}&page=1", R, R, R, R)
    assert record.headers == {"Authorization": R, "Accept": "*/*"} and headers["Authorization"] == "Bearer b"
    assert (record.query_string, record.referer) == (f"code={R}&a=b", f"http://r/?signature={R}")
    assert (record.user_id, record.note) == (7, "token=free-text")  # other fields, free text: as they were
    assert record.getMessage() == f"calling /x?token={R}&a=1 for 7"  # a %s argument holding a URL


def test_the_filter_uses_the_process_redactor(default_redactor: None) -> None:
    redaction.configure(Redactor(["session"], ["X-Session"]))
    record = record_with(x_session="s", token="kept", url="/p?session=s&token=kept")
    TrackingIdFilter().filter(record)
    assert (record.x_session, record.token, record.url) == (R, "kept", f"/p?session={R}&token=kept")


def test_access_fields_redact_the_query_the_path_and_the_referer() -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a?token=decoded-%3F", "QUERY_STRING": "Code=c&n=1",
               "HTTP_REFERER": "http://client/?apikey=k&page=2", "SERVER_PROTOCOL": "HTTP/1.1"}
    fields = access_fields(SimpleNamespace(status_code=200, sent=2), None, environ, datetime.timedelta(0))
    assert (fields["request_path"], fields["query_string"], fields["referer"]) == (
        f"/a?token={R}", f"Code={R}&n=1", f"http://client/?apikey={R}&page=2")
    custom = access_fields(SimpleNamespace(status_code=200, sent=2), None, environ, datetime.timedelta(0),
                           Redactor(["n"], []))
    assert custom["query_string"] == f"Code=c&n={R}"
    unparsed = access_fields(SimpleNamespace(status_code=400, sent=0), None, {"REMOTE_ADDR": "127.0.0.1"},
                             datetime.timedelta(0))
    assert (unparsed["request_path"], unparsed["query_string"], unparsed["referer"]) == (None, None, None)


def test_the_outgoing_call_line_shows_no_query_and_no_credentials(caplog: pytest.LogCaptureFixture) -> None:
    token = context.enter("out-1")
    try:
        with caplog.at_level(logging.INFO, logger="trackline.propagation"):
            outgoing_call({}, "GET", "https://user:pw@api.example.com:8443/v1/x?token=t#f")
    finally:
        context.leave(token)
    [record] = [r for r in caplog.records if r.name == "trackline.propagation"]
    assert record.getMessage() == "GET https://api.example.com:8443/v1/x"
    assert record.url == "https://api.example.com:8443/v1/x"  # type: ignore[attr-defined]


# -- app.yaml --------------------------------------------------------------------------------------------------

def test_app_yaml_keys_make_the_redactor_and_the_sample() -> None:
    app = AppConfig.from_settings({"TRACKLINE_REDACT_QUERY": ["sid"], "TRACKLINE_REDACT_HEADERS": [],
                                   "TRACKLINE_ACCESS_SAMPLE": {"/api/health": 100, "/ping": 0}})
    assert app.redactor.query_names == {"sid"} and app.redactor.header_names == frozenset()
    assert app.access_sample == {"/api/health": 100, "/ping": 0}
    default = AppConfig.from_settings({})
    assert (default.redactor.query_names, default.access_sample) == ({n.lower() for n in DEFAULT_QUERY}, {})


@pytest.mark.parametrize(("raw", "problem"), [
    ({"TRACKLINE_REDACT_QUERY": "token"}, "TRACKLINE_REDACT_QUERY: must be a list of query parameter names"),
    ({"TRACKLINE_REDACT_QUERY": ["token", "a&b"]}, "TRACKLINE_REDACT_QUERY: 'a&b' is not a query parameter name"),
    ({"TRACKLINE_REDACT_HEADERS": ["X Api Key"]}, "TRACKLINE_REDACT_HEADERS: 'X Api Key' is not a header name"),
    ({"TRACKLINE_REDACT_HEADERS": [7]}, "TRACKLINE_REDACT_HEADERS: 7 is not a header name"),
    ({"TRACKLINE_ACCESS_SAMPLE": ["/api/health"]}, "TRACKLINE_ACCESS_SAMPLE: must be a mapping of paths to N"),
    ({"TRACKLINE_ACCESS_SAMPLE": {"api/health": 10}}, "TRACKLINE_ACCESS_SAMPLE: 'api/health' is not a path"),
    ({"TRACKLINE_ACCESS_SAMPLE": {"/h?x=1": 10}}, "TRACKLINE_ACCESS_SAMPLE: '/h?x=1' is not a path"),
    ({"TRACKLINE_ACCESS_SAMPLE": {"/h": -1}}, "TRACKLINE_ACCESS_SAMPLE: /h: must be a whole number N"),
    ({"TRACKLINE_ACCESS_SAMPLE": {"/h": True}}, "TRACKLINE_ACCESS_SAMPLE: /h: must be a whole number N"),
    ({"TRACKLINE_REDACT_QUERIES": ["x"]}, "unknown trackline key TRACKLINE_REDACT_QUERIES (did you mean "
                                          "TRACKLINE_REDACT_QUERY?)"),
    ({"TRACKLINE_ACCESS_SAMPLES": {}}, "(did you mean TRACKLINE_ACCESS_SAMPLE?)"),
])
def test_app_yaml_mistakes_are_one_line_each(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AppConfig.from_settings(raw, "app.yaml")
    [line] = str(caught.value).splitlines()
    assert line.startswith("app.yaml: ") and problem in line, line


def test_the_shipped_app_yaml_documents_the_defaults() -> None:
    text = (CONF / "app.yaml").read_text()
    documented = {}
    for key in ("TRACKLINE_REDACT_QUERY", "TRACKLINE_REDACT_HEADERS", "TRACKLINE_ACCESS_SAMPLE"):
        [line] = re.findall(rf"(?m)^# ({key}: .*)$", text)
        documented.update(yaml.safe_load(line))
    assert documented["TRACKLINE_REDACT_QUERY"] == list(DEFAULT_QUERY)
    assert documented["TRACKLINE_REDACT_HEADERS"] == list(DEFAULT_HEADERS)
    AppConfig.from_settings(documented)  # the example is a valid one


def test_nginx_redacts_the_default_query_parameters() -> None:
    """nginx cannot read app.yaml: its copies of the list must equal the default (docs/redaction.md)."""
    text = NGINX_CONF.read_text()
    lists = re.findall(r"\(\?:\^\|&\)\(\?:([a-z_|]+)\)|\(\(\?:\[\^&\]\*&\)\*\?\)\(([a-z_|]+)\)|\\\?\(\?:\.\*&\)\?\(\?:"
                       r"([a-z_|]+)\)", text)
    names = ["".join(found) for found in lists]
    assert len(names) == 6, names  # three rounds, the whole-query fallback, the path and the referer
    for found in names:
        assert found.split("|") == list(DEFAULT_QUERY)


# -- the access sample -----------------------------------------------------------------------------------------

def test_the_sample_keeps_one_in_n_2xx_lines_of_listed_paths_and_every_other_line() -> None:
    sample = AccessSample({"/api/health": 10, "/ping": 0})
    ok, missing, failed = SimpleNamespace(status_code=200), SimpleNamespace(status="404 Not Found"), \
        SimpleNamespace(status_code=503)
    kept = [n for n in range(1000) if sample.keeps("/api/health", ok)]
    assert kept == list(range(0, 1000, 10))
    assert all(sample.keeps("/api/health", failed) for _ in range(50))
    assert not any(sample.keeps("/ping", ok) for _ in range(50))
    assert all(sample.keeps("/ping", missing) for _ in range(50))
    assert all(sample.keeps(path, ok) for path in ("/api/names", "/api/health/", None))

