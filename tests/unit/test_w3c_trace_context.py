"""The W3C Trace Context test suite, spec level 2 and strict level 2, as a table: all 41 of its cases.

Upstream: github.com/w3c/trace-context at commit acab820be9db7b3433668baa5cdd43f57f4c4be0 ("Fix tracestate key
grammar tests (#584)"), file ``test/test.py``; read, not vendored (its harness needs a live server). Each key of
``CASES`` is the name of one of its test methods, and each row holds the requests that method makes and the
assertions it makes on what comes back.

How 41 is counted: ``test/test.py`` has 41 methods named ``test_*``: 37 in ``TraceContextTest``, 3 in
``AdvancedTest``, 1 in ``TraceContext2Test``. Six of ``TraceContextTest``'s (``test_tracestate_duplicated_keys``,
``_key_illegal_characters``, ``_key_illegal_vendor_format``, ``_member_count_limit``, ``_key_length_limit``,
``_value_illegal_characters``) are skipped below ``STRICT_LEVEL=2``, and ``TraceContext2Test`` below
``SPEC_LEVEL=2``; at both levels 2 nothing is skipped and the harness reports "Ran 41 tests".
``test_the_table_is_the_whole_suite`` keeps the table at that count.

What a case does. The harness sends the service a request with the case's headers and asks it to call the
harness back (three times in ``AdvancedTest``, once elsewhere); it then reads ``traceparent`` and ``tracestate``
of each callback. Here the same happens without a network:

- ``_received``: what the server hands trackline. A header name is case-insensitive and must be the whole name;
  several fields of one name are joined with "," in order (RFC 9110 section 5.3), into the WSGI environ key
  ``TrackingMiddleware`` reads (gunicorn joins them the same way).
- ``_serve``: ``parse_traceparent(traceparent, tracestate)`` as ``TrackingMiddleware`` calls it, a new trace when
  that gives ``None``, then one ``child().headers()`` per callback: what trackline's outgoing calls send.
- ``_harness_view``: those headers read as the harness reads them (``get_traceparent``, ``get_tracestate``: exactly
  one ``traceparent`` its ``Traceparent`` class accepts; ``tracestate`` members by its grammar, raising on one that
  breaks it, keeping the first of a duplicated key). The row's checks are then the harness's assertions, one for
  one, named after them.

Each step also says what trackline does exactly, where the harness leaves a choice: ``continues`` (the caller's
trace-id and flags, a new parent-id; ``sends``: the exact ``tracestate`` sent, ``None`` for none) or ``restarts``
(a new trace; nothing of the incoming trace-id or ``tracestate`` is sent).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from trackline.tracecontext import new_trace, parse_traceparent
from trackline.wsgi import header_key

TRACE_ID = "12345678901234567890123456789012"
PARENT_ID = "1234567890123456"
SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-01"
NOT_SAMPLED = f"00-{TRACE_ID}-{PARENT_ID}-00"  # the traceparent of the harness's tracestate cases

Headers = list[tuple[str, str]]


# The harness's reading of a callback (test/test.py's TestBase, test/tracecontext/traceparent.py and tracestate.py).

_HARNESS_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_HARNESS_KEY = r"[0-9a-z][_0-9a-z\-*/@]{0,255}"
_HARNESS_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_HARNESS_MEMBER = re.compile(f"({_HARNESS_KEY})=({_HARNESS_VALUE})")
_HARNESS_DELIMITER = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True)
class Seen:
    """One callback as the harness sees it: its ``Traceparent`` and its ``Tracestate``."""

    trace_id: str
    parent_id: str
    trace_flags: int
    tracestate: dict[str, str]  # in order; the first member of a duplicated key

    @property
    def tracestate_text(self) -> str:
        """``str(tracestate)``: the members as the harness re-joins them."""
        return ",".join(f"{key}={value}" for key, value in self.tracestate.items())


def _harness_view(headers: dict[str, str]) -> Seen:
    traceparents = [value for name, value in headers.items() if name.lower() == "traceparent"]
    assert len(traceparents) == 1, f"expect one traceparent header: {headers}"
    match = _HARNESS_TRACEPARENT.fullmatch(traceparents[0])
    assert match is not None, f"Traceparent.from_string raises: {traceparents[0]!r}"
    version, trace_id, parent_id, flags = match.groups()
    assert version == "00" and trace_id != "0" * 32 and parent_id != "0" * 16, traceparents[0]
    tracestate: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() == "tracestate":
            for member in _HARNESS_DELIMITER.split(value):
                if member:
                    parsed = _HARNESS_MEMBER.fullmatch(member)
                    assert parsed is not None, f"Tracestate.from_string raises: {member!r}"
                    tracestate.setdefault(parsed[1], parsed[2])
    return Seen(trace_id, parent_id, int(flags, 16), tracestate)


# The harness's assertions. Each takes the callbacks of one request (one, except in AdvancedTest).

Check = Callable[[list[Seen]], None]


def trace_id_is(expected: str) -> Check:
    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert one.trace_id == expected

    return check


def trace_id_is_not(*unexpected: str) -> Check:
    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert one.trace_id not in unexpected

    return check


def parent_id_is_not(unexpected: str) -> Check:
    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert one.parent_id != unexpected

    return check


def has(key: str, value: str) -> Check:
    """``assertIn(key, tracestate)`` and ``assertEqual(tracestate[key], value)``."""

    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert one.tracestate.get(key) == value, one.tracestate

    return check


def lacks(key: str) -> Check:
    """``assertRaises(KeyError, lambda: tracestate[key])``."""

    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert key not in one.tracestate, one.tracestate

    return check


def size(count: int) -> Check:
    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert len(one.tracestate) == count

    return check


def text_has_one_of(*members: str) -> Check:
    """``assertTrue('foo=1' in str(tracestate) or ...)``."""

    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert any(member in one.tracestate_text for member in members), one.tracestate_text

    return check


def text_in_order(*members: str) -> Check:
    """Each of ``members`` in ``str(tracestate)``, each before the next (``str.index``)."""

    def check(seen: list[Seen]) -> None:
        (one,) = seen
        assert all(member in one.tracestate_text for member in members), one.tracestate_text
        positions = [one.tracestate_text.index(member) for member in members]
        assert positions == sorted(positions), one.tracestate_text

    return check


def not_an_empty_string(seen: list[Seen]) -> None:
    """``assertTrue(not tracestate or tracestate != '')``: always true of the harness's ``Tracestate`` object."""
    (one,) = seen
    assert not one.tracestate or one.tracestate != ""


def random_flag_set(seen: list[Seen]) -> None:
    """``assert_bit_set(trace_flags, 2)``: the harness's 2nd bit, 0x02."""
    (one,) = seen
    assert one.trace_flags & 0x02


def one_trace_id(expected: str) -> Check:
    def check(seen: list[Seen]) -> None:
        trace_ids = {one.trace_id for one in seen}
        assert len(trace_ids) == 1 and expected in trace_ids

    return check


def trace_ids_exclude(unexpected: str) -> Check:
    def check(seen: list[Seen]) -> None:
        assert unexpected not in {one.trace_id for one in seen}

    return check


def parent_ids(count: int) -> Check:
    def check(seen: list[Seen]) -> None:
        assert len({one.parent_id for one in seen}) == count

    return check


# One request of a case.


@dataclass(frozen=True)
class Step:
    headers: Headers
    checks: tuple[Check, ...]
    continued: bool
    sends: str | None = None
    calls: int = 1


def continues(headers: Headers, *checks: Check, sends: str | None = None, calls: int = 1) -> Step:
    """A request whose trace trackline continues, sending ``sends`` as ``tracestate``; ``checks``: the harness's."""
    return Step(headers, checks, continued=True, sends=sends, calls=calls)


def restarts(headers: Headers, *checks: Check, calls: int = 1) -> Step:
    """A request trackline starts a new trace for (no valid ``traceparent``); ``checks``: the harness's."""
    return Step(headers, checks, continued=False, calls=calls)


def tp(traceparent: str, name: str = "traceparent") -> Headers:
    """One ``traceparent`` header (by ``name``)."""
    return [(name, traceparent)]


def ts(*tracestates: str, name: str = "tracestate") -> Headers:
    """``tracestate`` headers after ``NOT_SAMPLED``, as the harness's tracestate cases send them."""
    return [("traceparent", NOT_SAMPLED), *((name, value) for value in tracestates)]


KEY_WITHOUT_VENDOR = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
KEY_WITH_VENDOR = KEY_WITHOUT_VENDOR + "@a-z0-9_-*/"
ALL_VALUE_CHARACTERS = "".join(map(chr, [*range(0x20, 0x2B + 1), *range(0x2D, 0x3C + 1), *range(0x3E, 0x7E + 1)]))
BARS = [",".join(f"bar{n:02d}={n:02d}" for n in range(first, first + 10)) for first in (1, 11, 21)]
BARS_32 = ",".join([*BARS, "bar31=31,bar32=32"])
FUTURE = "what-the-future-will-be-like"

#: TraceContextTest: Level 1 (37 methods).
TRACE_CONTEXT_TEST: dict[str, list[Step]] = {
    "test_both_traceparent_and_tracestate_missing": [restarts([])],
    "test_traceparent_included_tracestate_missing": [
        continues(tp(SAMPLED), trace_id_is(TRACE_ID), parent_id_is_not(PARENT_ID)),
    ],
    "test_traceparent_duplicated": [
        restarts([("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"),
                  ("traceparent", "00-12345678901234567890123456789012-1234567890123456-01")],
                 trace_id_is_not("12345678901234567890123456789011", "12345678901234567890123456789012")),
    ],
    "test_traceparent_header_name": [
        restarts(tp(SAMPLED, name="trace-parent"), trace_id_is_not(TRACE_ID)),
        restarts(tp(SAMPLED, name="trace.parent"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_header_name_valid_casing": [
        continues(tp(SAMPLED, name=name), trace_id_is(TRACE_ID))
        for name in ("TraceParent", "TrAcEpArEnT", "TRACEPARENT")
    ],
    "test_traceparent_version_0x00": [
        restarts(tp(f"{SAMPLED}."), trace_id_is_not(TRACE_ID)),
        restarts(tp(f"{SAMPLED}-{FUTURE}"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_version_0xcc": [
        continues(tp(f"cc-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is(TRACE_ID)),
        continues(tp(f"cc-{TRACE_ID}-{PARENT_ID}-01-{FUTURE}"), trace_id_is(TRACE_ID)),
        restarts(tp(f"cc-{TRACE_ID}-{PARENT_ID}-01.{FUTURE}"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_version_0xff": [restarts(tp(f"ff-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is_not(TRACE_ID))],
    "test_traceparent_version_illegal_characters": [
        restarts(tp(f".0-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is_not(TRACE_ID)),
        restarts(tp(f"0.-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_version_too_long": [
        restarts(tp(f"000-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is_not(TRACE_ID)),
        restarts(tp(f"0000-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_version_too_short": [restarts(tp(f"0-{TRACE_ID}-{PARENT_ID}-01"), trace_id_is_not(TRACE_ID))],
    "test_traceparent_trace_id_all_zero": [
        restarts(tp(f"00-{'0' * 32}-{PARENT_ID}-01"), trace_id_is_not("0" * 32)),
    ],
    "test_traceparent_trace_id_illegal_characters": [
        restarts(tp(f"00-.2345678901234567890123456789012-{PARENT_ID}-01"),
                 trace_id_is_not(".2345678901234567890123456789012")),
        restarts(tp(f"00-1234567890123456789012345678901.-{PARENT_ID}-01"),
                 trace_id_is_not("1234567890123456789012345678901.")),
    ],
    "test_traceparent_trace_id_too_long": [
        restarts(tp(f"00-123456789012345678901234567890123-{PARENT_ID}-01"),
                 trace_id_is_not("123456789012345678901234567890123", TRACE_ID, "23456789012345678901234567890123")),
    ],
    "test_traceparent_trace_id_too_short": [
        restarts(tp(f"00-1234567890123456789012345678901-{PARENT_ID}-01"),
                 trace_id_is_not("1234567890123456789012345678901")),
    ],
    "test_traceparent_parent_id_all_zero": [restarts(tp(f"00-{TRACE_ID}-{'0' * 16}-01"), trace_id_is_not(TRACE_ID))],
    "test_traceparent_parent_id_illegal_characters": [
        restarts(tp(f"00-{TRACE_ID}-.234567890123456-01"), trace_id_is_not(TRACE_ID)),
        restarts(tp(f"00-{TRACE_ID}-123456789012345.-01"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_parent_id_too_long": [
        restarts(tp(f"00-{TRACE_ID}-12345678901234567-01"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_parent_id_too_short": [
        restarts(tp(f"00-{TRACE_ID}-123456789012345-01"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_trace_flags_illegal_characters": [
        restarts(tp(f"00-{TRACE_ID}-{PARENT_ID}-.0"), trace_id_is_not(TRACE_ID)),
        restarts(tp(f"00-{TRACE_ID}-{PARENT_ID}-0."), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_trace_flags_too_long": [
        restarts(tp(f"00-{TRACE_ID}-{PARENT_ID}-001"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_trace_flags_too_short": [
        restarts(tp(f"00-{TRACE_ID}-{PARENT_ID}-1"), trace_id_is_not(TRACE_ID)),
    ],
    "test_traceparent_ows_handling": [
        continues(tp(value), trace_id_is(TRACE_ID))
        for value in (f" {SAMPLED}", f"\t{SAMPLED}", f"{SAMPLED} ", f"{SAMPLED}\t", f"\t {SAMPLED} \t")
    ],
    "test_tracestate_included_traceparent_missing": [
        # The harness: assertEqual(len(first), len(second)). Neither is inherited: both are 0.
        restarts([("tracestate", "foo=1")], size(0)),
        restarts([("tracestate", "foo=1,bar=2")], size(0)),
    ],
    "test_tracestate_included_traceparent_included": [
        continues(ts("foo=1,bar=2"), trace_id_is(TRACE_ID), has("foo", "1"), has("bar", "2"), sends="foo=1,bar=2"),
    ],
    "test_tracestate_header_name": [
        continues(ts("foo=1", name="trace-state"), lacks("foo")),
        continues(ts("foo=1", name="trace.state"), lacks("foo")),
    ],
    "test_tracestate_header_name_valid_casing": [
        continues(ts("foo=1", name=name), has("foo", "1"), sends="foo=1")
        for name in ("TraceState", "TrAcEsTaTe", "TRACESTATE")
    ],
    "test_tracestate_empty_header": [
        continues(ts(""), not_an_empty_string, trace_id_is(TRACE_ID)),
        continues(ts("foo=1", ""), trace_id_is(TRACE_ID), has("foo", "1"), sends="foo=1"),
        continues(ts("", "foo=1"), trace_id_is(TRACE_ID), has("foo", "1"), sends="foo=1"),
    ],
    "test_tracestate_multiple_headers_different_keys": [
        continues(ts("foo=1,bar=2", "rojo=1,congo=2", "baz=3"), trace_id_is(TRACE_ID),
                  text_in_order("foo=1", "bar=2", "rojo=1", "congo=2", "baz=3"),
                  sends="foo=1,bar=2,rojo=1,congo=2,baz=3"),
    ],
    # Inherited; of a duplicated key trackline keeps the left-most member (the harness allows as-is too).
    "test_tracestate_duplicated_keys": [
        continues(ts("foo=1,foo=1"), trace_id_is(TRACE_ID), text_has_one_of("foo=1"), sends="foo=1"),
        continues(ts("foo=1,foo=2"), trace_id_is(TRACE_ID), text_has_one_of("foo=1", "foo=2"), sends="foo=1"),
        continues(ts("foo=1", "foo=1"), trace_id_is(TRACE_ID), text_has_one_of("foo=1"), sends="foo=1"),
        continues(ts("foo=1", "foo=2"), trace_id_is(TRACE_ID), text_has_one_of("foo=1", "foo=2"), sends="foo=1"),
    ],
    "test_tracestate_all_allowed_characters": [
        continues(ts(f"{key}={ALL_VALUE_CHARACTERS}"), has(key, ALL_VALUE_CHARACTERS),
                  sends=f"{key}={ALL_VALUE_CHARACTERS}") for key in (KEY_WITHOUT_VENDOR, KEY_WITH_VENDOR)
    ],
    "test_tracestate_ows_handling": [
        *(continues(ts(value), has("foo", "1"), has("bar", "2"), has("baz", "3"), sends="foo=1,bar=2,baz=3")
          for value in ("foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3")),
        *(continues(ts(value), trace_id_is(TRACE_ID), has("foo", "1"), sends="foo=1")
          for value in (" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t")),
    ],
    "test_tracestate_key_illegal_characters": [
        continues(ts("foo =1"), lacks("foo ")),
        continues(ts("FOO=1"), lacks("FOO")),
        continues(ts("foo.bar=1"), lacks("foo.bar")),
    ],
    "test_tracestate_key_illegal_vendor_format": [
        continues(ts("foo@=1,bar=2"), has("foo@", "1"), has("bar", "2"), sends="foo@=1,bar=2"),
        continues(ts("@foo=1,bar=2"), lacks("bar")),
        continues(ts("foo@@bar=1,bar=2"), has("foo@@bar", "1"), has("bar", "2"), sends="foo@@bar=1,bar=2"),
        continues(ts("foo@bar@baz=1,bar=2"), has("foo@bar@baz", "1"), has("bar", "2"), sends="foo@bar@baz=1,bar=2"),
    ],
    "test_tracestate_member_count_limit": [
        continues(ts(*BARS, "bar31=31,bar32=32"), has("bar01", "01"), size(32), sends=BARS_32),
        continues(ts(*BARS, "bar31=31,bar32=32,bar33=33"), lacks("bar01")),
    ],
    "test_tracestate_key_length_limit": [
        *(continues(ts("foo=1", f"{key}=1"), has("foo", "1"), has(key, "1"), sends=f"foo=1,{key}=1")
          for key in ("z" * 256, "t" * 241 + "@" + "v" * 14, "t" * 242 + "@v", "t@" + "v" * 15)),
        continues(ts("foo=1", "z" * 257 + "=1"), lacks("foo")),
    ],
    "test_tracestate_value_illegal_characters": [
        continues(ts("foo=bar=baz"), lacks("foo")),
        continues(ts("foo=,bar=3"), lacks("foo"), lacks("bar")),
    ],
}

#: AdvancedTest: Level 1, three callbacks per request (3 methods).
ADVANCED_TEST: dict[str, list[Step]] = {
    "test_multiple_requests_with_valid_traceparent": [
        continues(tp(SAMPLED), one_trace_id(TRACE_ID), parent_ids(3), calls=3),
    ],
    "test_multiple_requests_without_traceparent": [restarts([], parent_ids(3), calls=3)],
    "test_multiple_requests_with_illegal_traceparent": [
        restarts(tp(f"00-{'0' * 32}-{PARENT_ID}-01"), trace_ids_exclude("0" * 32), parent_ids(3), calls=3),
    ],
}

#: TraceContext2Test: Level 2 (1 method).
TRACE_CONTEXT_2_TEST: dict[str, list[Step]] = {
    "test_propagates_random_flag": [
        continues(tp(f"00-{TRACE_ID}-{PARENT_ID}-02"), trace_id_is(TRACE_ID), parent_id_is_not(PARENT_ID),
                  random_flag_set),
    ],
}

CASES = {**TRACE_CONTEXT_TEST, **ADVANCED_TEST, **TRACE_CONTEXT_2_TEST}


def _received(headers: Headers) -> dict[str, str]:
    """The request headers as the WSGI environ holds them: one key per name (``header_key``), several fields of
    one name joined with "," in the order they came."""
    environ: dict[str, str] = {}
    for name, value in headers:
        key = header_key(name)
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def _serve(headers: Headers, calls: int) -> list[dict[str, str]]:
    """What each of ``calls`` outgoing calls of a request with ``headers`` sends."""
    environ = _received(headers)
    trace = parse_traceparent(environ.get("HTTP_TRACEPARENT"), environ.get("HTTP_TRACESTATE")) or new_trace()
    return [trace.child().headers() for _ in range(calls)]


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_w3c_trace_context_suite(steps: list[Step]):
    for step in steps:
        sent = _serve(step.headers, step.calls)
        seen = [_harness_view(headers) for headers in sent]
        for check in step.checks:
            check(seen)
        # What trackline does exactly.
        assert len({one.trace_id for one in seen}) == 1  # one request, one trace
        incoming = _received(step.headers).get("HTTP_TRACEPARENT", "").strip(" \t")
        for one, headers in zip(seen, sent, strict=True):
            if step.continued:
                assert (one.trace_id, one.trace_flags) == (incoming[3:35], int(incoming[53:55], 16) & 0x03)
                assert one.parent_id != incoming[36:52]
                assert headers.get("tracestate") == step.sends
            else:
                assert "tracestate" not in headers
                assert one.trace_id not in "".join(value for _, value in step.headers)


def test_the_table_is_the_whole_suite():
    """test/test.py at spec level 2, strict level 2: 37 + 3 + 1 test methods, none skipped."""
    assert (len(TRACE_CONTEXT_TEST), len(ADVANCED_TEST), len(TRACE_CONTEXT_2_TEST)) == (37, 3, 1)
    assert len(CASES) == 41
    assert all(name.startswith("test_") and steps for name, steps in CASES.items())
