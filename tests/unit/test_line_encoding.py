"""How JsonFormatter encodes a line (orjson, and the standard library for what orjson refuses): compact JSON,
files ASCII with the standard library's escapes, every value python-json-logger's ``default`` wrote written as
it wrote it, ``null`` for NaN and the infinities whichever encoder ran, and a user's own encoder options kept."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import json
import logging
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pythonjsonlogger.json import JsonEncoder

from trackline.logs import JsonFormatter

#: Every character but the surrogates, once each (a line well over the default cap: the tests lift it).
EVERY_CHARACTER = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)
UNCAPPED = {"max_line_bytes": 10**9}


def record(message: str = "hello", **fields: Any) -> logging.LogRecord:
    made = logging.LogRecord("acme.orders", logging.INFO, "/srv/acme/orders.py", 7, message, None, None, "pay")
    made.__dict__.update({"tracking_id": "req-1", **fields})
    return made


def stdlib(value: Any, ensure_ascii: bool = True) -> str:
    """``value`` as python-json-logger's encoder writes it, compact: what the line must hold."""
    return JsonEncoder(ensure_ascii=ensure_ascii, separators=(",", ":")).encode(value)


@pytest.mark.parametrize("text", [EVERY_CHARACTER, "ASCII, DEL \x7f and \x1f controls\n"], ids=["all", "ascii"])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_every_character_is_written_as_the_standard_library_writes_it(ensure_ascii: bool, text: str) -> None:
    line = JsonFormatter(json_ensure_ascii=ensure_ascii, **UNCAPPED).format(record(text))
    assert f'"message":{stdlib(text, ensure_ascii)},' in line
    if ensure_ascii:  # U+2028, bidi controls, DEL: escaped, the file stays printable ASCII (docs/security.md)
        assert line.isascii() and "\x7f" not in line
        assert text != EVERY_CHARACTER or ("\\u2028" in line and "\\u202e" in line)


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


@dataclasses.dataclass
class Order:
    number: int
    placed: datetime.date
    price: float
    _note: str = "kept"  # orjson would leave it out


class Metres(float):
    pass


Point = collections.namedtuple("Point", "x y")
AWARE = datetime.datetime(2026, 12, 7, 13, 44, 7, 718000, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
#: A local mean time (Amsterdam's until 1937): an offset in seconds, which orjson would leave out.
LMT = datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(minutes=19, seconds=32)))
#: Values the standard library hands to python-json-logger's ``default`` (or writes as their base type) that
#: orjson would write its own way or refuse.
VALUES: dict[str, Any] = {
    "aware datetime": AWARE, "naive datetime": AWARE.replace(tzinfo=None), "date": AWARE.date(),
    "offset in seconds": LMT, "time": AWARE.time(), "time with an offset": AWARE.timetz(),
    "dataclass": Order(7, AWARE.date(), 9.5), "exception": ValueError("bad order"), "enum": Colour.RED,
    "int enum": Size.LARGE, "enum class": Colour, "uuid": uuid.UUID("5f0c6a9e-1d2b-4c3a-9e8f-0a1b2c3d4e5f"),
    "bytes": b"\x00\xffab", "type": Order, "set": {1}, "decimal": Decimal("1.10"), "namedtuple": Point(1, 2),
    "float subclass": Metres(2.5), "tuple": (1, "a"), "key not a string": {7: "a", False: "b", None: "c", 2.5: "d"},
    "int over 64 bits": 2**70, "lone surrogate": "a\ud800b", "nested": {"at": [AWARE, {"id": uuid.UUID(int=1)}]},
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_values_come_out_as_python_json_loggers_encoder_wrote_them(value: Any) -> None:
    line = JsonFormatter().format(record(value=value, after=1))
    assert f'"value":{stdlib(value)},"after":1}}' in line
    assert line.isascii()


NON_FINITE = {"nan": math.nan, "infinity": math.inf, "minus infinity": -math.inf}


@pytest.mark.parametrize("value", NON_FINITE.values(), ids=NON_FINITE.keys())
@pytest.mark.parametrize("beside", [1, 2**70, "a\ud800b", Order(1, AWARE.date(), math.nan)],
                         ids=["orjson", "over 64 bits: the fallback", "a surrogate: the fallback", "from default"])
def test_nan_and_infinities_are_null_whichever_encoder_writes_the_line(value: float, beside: Any) -> None:
    for formatter in (JsonFormatter(), JsonFormatter(json_ensure_ascii=False), JsonFormatter(json_default=str)):
        line = formatter.format(record(value=value, beside=beside))
        parsed = json.loads(line, parse_constant=pytest.fail)  # NaN, Infinity: not JSON
        assert parsed["value"] is None and ",\"value\":null," in line


def test_every_line_is_compact_whichever_encoder_writes_it() -> None:
    plain = JsonFormatter().format(record(order=1, items=[1, 2]))
    fallback = JsonFormatter().format(record(order=2**70, items=[1, 2]))
    assert '"order":1,"items":[1,2]}' in plain and '"order":1180591620717411303424,"items":[1,2]}' in fallback
    assert ": " not in plain + fallback and ", " not in plain + fallback


def test_a_json_default_of_ones_own_decides_every_value_it_is_asked() -> None:
    def default(value: Any) -> str:
        return f"mine:{type(value).__name__}"

    line = JsonFormatter(json_default=default).format(record(id=uuid.UUID(int=1), colour=Colour.RED, at=AWARE))
    assert '"id":"mine:UUID","colour":"mine:Colour","at":"mine:datetime"}' in line


def test_a_json_encoder_serializer_or_indent_of_ones_own_is_used_as_given() -> None:
    class Encoder(json.JSONEncoder):
        def default(self, o: Any) -> Any:
            return "encoded"

    def serializer(value: Any, **options: Any) -> str:
        return json.dumps({"serialized": sorted(value)}, **options)

    assert JsonFormatter(json_encoder=Encoder).format(record(at=AWARE)).endswith(', "at": "encoded"}')
    assert json.loads(JsonFormatter(json_serializer=serializer).format(record()))["serialized"][0] == "@timestamp"
    indented = JsonFormatter(json_indent=2).format(record(at=AWARE, value=math.nan))
    assert indented.startswith('{\n  "@timestamp": "') and indented.endswith('"at": "2026-12-07T13:44:07.718000+08:00",'
                                                                              '\n  "value": NaN\n}')
