"""Every output of ``trackline trace`` and ``trackline sql`` is text: the one escaping function they all use.

Log values are written by strangers (a request path, a User-Agent, an app's message), so a value must not act on
the operator's terminal: no C0 control character (ESC, BEL, CR, LF, NUL, ...), no DEL, no C1 (U+0080 to
U+009F, e.g. U+009B, a one-character CSI on some terminals), no Unicode line or paragraph separator and no
bidirectional control (U+202E and its kin) reaches it. ``escape`` shows each of them as its JSON
escape (``\\u001b``, ``\\r``, ``\\n``, ``\\t``, ``\\u007f``, ``\\u009b``), the same text that the stored JSON line
holds, so a value can neither move the cursor nor start a row of its own.

``escape_json`` does the same to a JSON text and keeps it the same JSON value: in valid JSON a raw DEL or C1
character can only be inside a string (where ``\\u`` escapes it) and a raw tab or CR only between tokens (where
a space takes its place). ``trackline trace`` prints a stored line as it is unless it holds such a character
(a line shipped by the log host or written by another tool: trackline's own writer escapes them all), and
``--json`` and ``sql --json`` pass their output through it.

Both return ``text`` itself when it has nothing to escape, found with one scan in C (``isprintable``, then the
regular expression only for text that is not printable), so the common case costs next to nothing.
"""

from __future__ import annotations

import re

#: Unicode's line and paragraph separators (a new row in some terminals and pagers) and its bidirectional
#: controls (they reorder what follows: "Trojan Source", CVE-2021-42574).
_UNICODE = [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CODES = [*range(0x20), *range(0x7F, 0xA0), *_UNICODE]
_CONTROL = re.compile("[" + "".join(re.escape(chr(code)) for code in _CODES) + "]")
_NAMED = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
#: Each control character's escape, made once.
_ESCAPES = {chr(code): _NAMED.get(chr(code), f"\\u{code:04x}") for code in _CODES}
#: In a JSON text: a tab or CR (only between tokens in valid JSON; a raw LF ends the line) becomes a space.
_JSON_ESCAPES = _ESCAPES | {"\t": " ", "\r": " ", "\n": " "}


def escape(text: str) -> str:
    """``text`` with its control characters (C0, DEL, C1) shown as JSON escapes instead of acting."""
    if text.isprintable():
        return text
    return _CONTROL.sub(lambda found: _ESCAPES[found.group()], text)


def escape_json(text: str) -> str:
    """The JSON text ``text`` with no raw control character, the same JSON value: DEL and C1 in strings as
    ``\\u`` escapes, tab, CR and LF between tokens as spaces."""
    if text.isprintable():
        return text
    return _CONTROL.sub(lambda found: _JSON_ESCAPES[found.group()], text)
