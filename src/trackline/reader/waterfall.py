"""``trackline trace ID --waterfall``: one request's span tree (``spans.build``) drawn in the terminal.

Each span is a row (its place in the tree, name, host, service, status, start and duration in ms, and a bar on
a time axis as wide as the terminal leaves), its log lines under it in time order among its child spans. Colour
only on a terminal and without ``NO_COLOR``; box-drawing characters only where stdout can encode them. Text from
the lines (client-controlled paths and headers among it) is printed with its control characters escaped, so a
line cannot move the cursor or recolour the terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from trackline.reader.spans import CALL, EDGE, REQUEST, TASK, Line, Span, Tree, build, tree_json
from trackline.reader.text import escape as clean  # one escaping function for every output (reader/text.py)
from trackline.reader.text import escape_json
from trackline.reader.trace import Match

#: Bars by kind (ANSI foreground colours); errors are red whatever their kind.
_KIND_COLOURS = {EDGE: "35", REQUEST: "34", CALL: "33", TASK: "32"}
_LEVEL_COLOURS = {"WARNING": "33", "WARN": "33", "DEBUG": "2"}
_RED, _DIM, _BOLD = "31", "2", "1"
_MIN_BAR = 10


@dataclass(frozen=True)
class Glyphs:
    bar: str
    open: str
    branch: str
    last: str
    down: str
    at_least: str
    ellipsis: str
    arrow: str
    error: str
    note: str


UNICODE = Glyphs("█", "░", "├─ ", "└─ ", "│  ", "≥", "…", "→", "✗", "·")
ASCII = Glyphs("#", ".", "|- ", "`- ", "|  ", ">=", "~", "->", "!", "*")



@dataclass
class Style:
    colour: bool
    glyphs: Glyphs
    cut: bool = False  # a terminal: a log line's row is cut to its width (a file or a pipe keeps it whole)

    def paint(self, text: str, *codes: str) -> str:
        codes = tuple(code for code in codes if code)
        if not self.colour or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def fit(self, text: str, width: int, right: bool = False) -> str:
        """``text`` cut (with an ellipsis) or padded to ``width``."""
        if len(text) > width:
            text = text[: max(width - len(self.glyphs.ellipsis), 0)] + self.glyphs.ellipsis
            text = text[:width]
        return text.rjust(width) if right else text.ljust(width)

    def row(self, text: str, width: int) -> str:
        """A free-text row: cut to ``width`` on a terminal."""
        return self.fit(text, width).rstrip() if self.cut else text


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _some(values: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``values`` (cleaned), and how many more there are."""
    more = f" and {len(values) - shown} more" if len(values) > shown else ""
    return ", ".join(map(clean, values[:shown])) + more


def _span_of(seconds: float) -> str:
    """A duration for people: ms below 10 s, then seconds, then days, hours and minutes."""
    if seconds < 10:
        return f"{_ms(seconds)} ms"
    if seconds < 600:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    return " ".join(f"{value}{unit}" for value, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if value)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


@dataclass
class _Layout:
    name: int
    where: int
    service: int
    status: int
    start: int
    duration: int
    bar: int


def _layout(tree: Tree, names: dict[str, str], labels: dict[str, str], width: int, glyphs: Glyphs) -> _Layout:
    """Column widths: the bar takes what the others leave of ``width`` (at least ``_MIN_BAR``); on a narrow
    terminal the other columns give way: the service, the name, the numbers, the status, the place, then the
    service and the name again."""
    spans = [span for _, span in tree.spans()]
    starts = max(len(_ms((span.start - tree.start).total_seconds())) for span in spans)
    durations = max(len(_duration(span, glyphs)) for span in spans)
    layout = _Layout(name=min(max([len(text) for text in names.values()] + [4]), max(24, width * 3 // 10)),
                     where=min(max([len(label) for label in labels.values()] + [7]), 16) if labels else 0,
                     service=min(max([len(span.service) for span in spans] + [7]), 16),
                     status=min(max([len(span.status or "-") for span in spans] + [6]), 9),
                     start=max(starts, 8), duration=max(durations, 8), bar=0)
    usable = width - 1  # a row as wide as the terminal would wrap on some
    steps = (("service", 12), ("name", 20), ("start", max(starts, 5)), ("duration", max(durations, 5)),
             ("status", 6), ("where", min(layout.where, 8)), ("service", 8), ("name", 12))
    for column, narrowest in steps:
        short = _MIN_BAR - (usable - _fixed(layout))
        if short <= 0:
            break
        setattr(layout, column, max(narrowest, getattr(layout, column) - short))
    layout.bar = max(_MIN_BAR, usable - _fixed(layout))
    return layout


def _duration(span: Span, glyphs: Glyphs) -> str:
    """The duration column: the span's, or for an open-ended span how long it is known to have lasted."""
    if span.duration is not None:
        return _ms(span.duration)
    return glyphs.at_least + _ms((span.last - span.start).total_seconds())


def _fixed(layout: _Layout) -> int:
    """The width of the columns before the bar, each with the space after it."""
    return (layout.name + 1 + (layout.where + 1 if layout.where else 0) + layout.service + 1 + layout.status + 1
            + layout.start + 1 + layout.duration + 1)


def render(tree: Tree, width: int = 100, colour: bool = False, glyphs: Glyphs = UNICODE,
           cut: bool = False) -> list[str]:
    """The waterfall of ``tree`` as rows of text: span rows at most ``width`` - 1 wide; the rows of log lines
    and notes too when ``cut`` (on a terminal), else whole (a file or a pipe keeps every message)."""
    style = Style(colour, glyphs, cut)
    names = dict(_tree_names(tree, glyphs))
    labels = tree.places()
    layout = _layout(tree, names, labels, width, glyphs)
    total = max((tree.end - tree.start).total_seconds(), 0.0)
    spans = [span for _, span in tree.spans()]
    summary = [_count(len(spans), "span"), _count(tree.lines, "line")]
    if opened := sum(span.open for span in spans):
        summary.append(f"{opened} open-ended")
    if tree.unplaced:
        summary.append(f"{len(tree.unplaced)} in no span")
    day = "%Y-%m-%d %H:%M:%S.%f"
    head = [clean(tree.query)]
    if tree.tracking_ids and tree.tracking_ids != [tree.query]:
        head.append(f"tracking_id {_some(tree.tracking_ids)}")
    if tree.trace_ids and tree.trace_ids != [tree.query]:
        head.append(f"trace_id {_some(tree.trace_ids)}")
    end = tree.end.astimezone().strftime(day if tree.end.astimezone().date() != tree.start.astimezone().date()
                                         else "%H:%M:%S.%f")[:-3]
    head.append(f"{tree.start.astimezone().strftime(day)[:-3]} {glyphs.arrow} {end} ({_span_of(total)})")
    head.append(", ".join(summary))
    rows = [style.paint(row, _BOLD) for row in _wrap(head, width)]
    axis_right = f"{_ms(total)} ms"
    axis = "0" + axis_right.rjust(layout.bar - 1) if layout.bar > len(axis_right) + 1 else axis_right
    columns = [style.fit("span", layout.name)]
    if layout.where:
        columns.append(style.fit("host" if any(span.host for span in spans) else "log dir", layout.where))
    columns += [style.fit("service", layout.service), style.fit("status", layout.status, right=True),
                style.fit("start ms" if layout.start >= 8 else "start", layout.start, right=True),
                style.fit("dur ms" if layout.duration >= 6 else "dur", layout.duration, right=True),
                axis]
    rows.append(style.paint(" ".join(columns), _DIM))
    for root in tree.roots:
        rows.extend(_span_rows(root, "", tree, names, labels, layout, style, total))
    if tree.unplaced:
        rows.append("")
        rows.append(style.paint(style.row(f"lines in no span ({len(tree.unplaced)}): no span_id, so their place in"
                                          " the tree is not known", width), _BOLD))
        for line in tree.unplaced:
            rows.extend(_line_rows(line, "  ", tree, style, width, where=Path(line.match.source).name))
    return rows


def _wrap(parts: list[str], width: int) -> list[str]:
    """``parts`` joined by two spaces into rows of at most ``width`` (a part longer than that has a row)."""
    rows: list[str] = []
    for part in parts:
        if rows and len(rows[-1]) + 2 + len(part) < width:
            rows[-1] += "  " + part
        else:
            rows.append(part)
    return rows


def _tree_names(tree: Tree, glyphs: Glyphs) -> Iterator[tuple[str, str]]:
    """Each span's name with its tree prefix."""
    def walk(span: Span, lead: str, own: str) -> Iterator[tuple[str, str]]:
        yield span.key, own + clean(span.name)
        for index, child in enumerate(span.children):
            last = index == len(span.children) - 1
            yield from walk(child, lead + ("   " if last else glyphs.down), lead + (glyphs.last if last else
                                                                                      glyphs.branch))

    for root in tree.roots:
        yield from walk(root, "", "")


def _bar(span: Span, tree: Tree, layout: _Layout, style: Style, total: float) -> str:
    width = layout.bar

    def cell(moment: datetime) -> float:
        return 0.0 if total <= 0 else (moment - tree.start).total_seconds() / total * width

    begin = min(int(cell(span.start)), width - 1)
    colour = _RED if span.error else _KIND_COLOURS.get(span.kind, "36")
    if span.end is not None:
        stop = max(begin + 1, min(width, round(cell(span.end) + 0.4999)))
        return " " * begin + style.paint(style.glyphs.bar * (stop - begin), colour) + " " * (width - stop)
    known = max(begin + 1, min(width - 1, round(cell(span.last) + 0.4999)))  # at least a cell of its open tail
    if begin == width - 1:  # it starts in the last cell: all of it is the open tail
        known = begin
    solid = style.paint(style.glyphs.bar * (known - begin), colour)
    return " " * begin + solid + style.paint(style.glyphs.open * (width - known), colour, _DIM)


def _span_rows(span: Span, lead: str, tree: Tree, names: dict[str, str], labels: dict[str, str],
               layout: _Layout, style: Style, total: float) -> Iterator[str]:
    glyphs = style.glyphs
    start = (span.start - tree.start).total_seconds()
    duration = _duration(span, glyphs)
    status = span.status or "-"
    columns = [style.fit(names[span.key], layout.name)]
    if layout.where:
        columns.append(style.fit(clean(labels.get(span.key, "-")), layout.where))
    columns += [style.fit(clean(span.service), layout.service),
                style.paint(style.fit(clean(status), layout.status, right=True), _RED if span.error else ""),
                style.fit(_ms(start), layout.start, right=True), style.fit(duration, layout.duration, right=True),
                _bar(span, tree, layout, style, total)]
    yield " ".join(columns)
    # under the span: its notes, its lines, then its child spans
    children = list(span.children)
    inner = lead + (glyphs.down if children else "   ")
    notes = []
    if span.open:
        notes.append(f"open-ended: {span.open_reason}")
    if span.link == "missing":
        notes.append(f"parent span {span.parent_span_id} is not in the logs")
    elif span.link in ("parent_task_id", "retry", "named", "time"):
        how = {"parent_task_id": f"its parent_task_id {span.parent_task_id}",
               "retry": "an earlier attempt of the same task", "named": f"a line naming task {span.task_id}",
               "time": "time (it ran within this span of its trace)"}
        notes.append(f"parent span {span.parent_span_id} is not in the logs: placed by {how[span.link]}")
    if span.fields.get("upstream_addr"):
        notes.append("upstream " + ", ".join(f"{key.removeprefix('upstream_')}={value}" for key, value in
                                               span.fields.items() if key.startswith("upstream_")))
    width = _fixed(layout) + layout.bar
    for note in notes:
        mark = glyphs.ellipsis if span.open and note.startswith("open") else glyphs.note
        yield style.paint(style.row(clean(f"{inner}{mark} {note}"), width), _DIM)
    for line in span.lines:
        yield from _line_rows(line, inner, tree, style, width)
    for index, child in enumerate(children):
        last = index == len(children) - 1
        yield from _span_rows(child, lead + ("   " if last else glyphs.down), tree, names, labels, layout, style,
                              total)


def _line_rows(line: Line, prefix: str, tree: Tree, style: Style, width: int, where: str = "") -> Iterator[str]:
    offset = (line.time - tree.start).total_seconds()
    mark = style.glyphs.error if line.error else " "
    level = clean(line.level.upper())
    colour = _RED if line.error else _LEVEL_COLOURS.get(level, "")
    head = f"{prefix}{mark}{'+' + _ms(offset):>9} ms "
    text = f"{clean(line.logger)}  {clean(line.message)}"
    if where:
        text = f"{clean(where)}  {text}"
    body = f"{level:<7} {text}"
    if style.cut:  # a terminal: one row each, cut to its width
        body = style.fit(body, max(width - len(head), 10)).rstrip()
    yield style.paint(head, _DIM) + style.paint(body[:8], colour, _BOLD if line.error else "") + body[8:]
    if line.traceback:
        last = next((row for row in reversed(line.traceback.strip().splitlines()) if row.strip()), "")
        yield style.paint(style.row(f"{prefix}    {style.glyphs.arrow} {clean(last.strip())}", width), _RED)


def wants_colour(stream: TextIO) -> bool:
    """ANSI colour on a terminal only, and not when ``NO_COLOR`` is set to anything but the empty string
    (no-color.org)."""
    return bool(stream.isatty()) and not os.environ.get("NO_COLOR")


def glyphs_for(stream: TextIO) -> Glyphs:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return UNICODE if encoding.startswith("utf") else ASCII


def emit(matches: list[Match], query: str, *, waterfall: bool = False, as_json: bool = False,
         html: str | None = None, pretty: bool = False, out: TextIO | None = None) -> bool:
    """What ``trackline trace ID --waterfall | --json | --html FILE`` prints and writes to ``out`` (the current
    ``sys.stdout`` by default; nothing without matches); ``False`` when the page could not be written (said on
    stderr)."""
    out = out or sys.stdout
    if not matches:
        return True
    tree = build(matches, query)
    if html is not None:
        from trackline.reader.waterfall_html import page

        try:
            # 0640 (less the umask): the page holds the request's lines, as the logs do
            with os.fdopen(os.open(html, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "w", encoding="utf-8") as file:
                file.write(page(tree))
        except OSError as exc:
            print(f"trackline: cannot write {html}: {exc.strerror or exc}", file=sys.stderr)
            return False
        if not (waterfall or as_json or pretty):
            spans = sum(1 for _ in tree.spans())
            out.write(f"wrote {html}: {spans} span{'s' if spans != 1 else ''}, {tree.lines} lines\n")
    if pretty:
        from trackline.reader.trace import pretty as pretty_rows

        out.write("".join(f"{row}\n" for row in pretty_rows(matches)))
    if as_json:
        out.write(escape_json(json.dumps(tree_json(tree), ensure_ascii=False)) + "\n")  # no raw DEL or C1
    if waterfall:
        width = shutil.get_terminal_size().columns
        rows = render(tree, width, wants_colour(out), glyphs_for(out), cut=out.isatty())
        out.write("".join(f"{row}\n" for row in rows))
    return True
