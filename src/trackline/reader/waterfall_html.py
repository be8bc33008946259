"""``trackline trace ID --html FILE``: the waterfall as one self-contained HTML page.

The page loads nothing: its style and script are inline (and the only ones its Content-Security-Policy lets
run, by their hashes; ``default-src 'none'`` refuses every fetch), it opens from ``file://``. The tree is in the
page as JSON (``spans.tree_json``) inside ``<script type="application/json">``, with ``<``, ``>`` and ``&``
escaped, so no text from a log line (client-controlled paths, headers, messages) can end the element or be read
as markup; the script builds the page with DOM calls and ``textContent`` only, never ``innerHTML``. Rows are
drawn once for every span; a span's lines are drawn when it is opened, so a request of 500 spans and 10,000
lines stays quick.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json

from trackline.reader.spans import Tree, tree_json

STYLE = """
:root { --edge: #a855f7; --request: #3b82f6; --call: #d97706; --task: #16a34a; --span: #0891b2; --error: #dc2626;
  --grid: minmax(260px, 30%) 110px 150px 92px 76px 84px 1fr; font: 13px/1.4 system-ui, sans-serif; color: #1f2937; }
body { margin: 0; background: #fff; }
header { padding: 10px 16px; background: #111827; color: #f9fafb; }
header h1 { font-size: 16px; margin: 0 0 4px; font-weight: 600; word-break: break-all; }
header dl { display: flex; flex-wrap: wrap; gap: 4px 20px; margin: 0; }
header dt { color: #9ca3af; display: inline; }
header dd { display: inline; margin: 0 0 0 6px; font-family: ui-monospace, monospace; word-break: break-all; }
.legend { display: flex; gap: 14px; margin-top: 6px; color: #d1d5db; font-size: 12px; }
.legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; margin-right: 5px;
  background: var(--c); vertical-align: -1px; }
.row { display: grid; grid-template-columns: var(--grid); align-items: center; min-height: 24px;
  border-bottom: 1px solid #f3f4f6; cursor: pointer; }
.row > div { padding: 0 6px; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.row:hover { background: #f9fafb; }
.row.selected { background: #eff6ff; outline: 1px solid #93c5fd; }
.row.hidden { display: none; }
.heading { position: sticky; top: 0; background: #f3f4f6; font-weight: 600; cursor: default; z-index: 2; }
.heading:hover { background: #f3f4f6; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.name { display: flex; align-items: center; }
.toggle { border: 0; background: none; width: 16px; padding: 0; cursor: pointer; color: #6b7280; flex: none; }
.label { overflow: hidden; text-overflow: ellipsis; }
.kind { font-size: 10px; text-transform: uppercase; color: #fff; background: var(--c); border-radius: 3px;
  padding: 0 4px; margin-right: 6px; flex: none; }
.status.error, .row.error .label { color: var(--error); font-weight: 600; }
.track { position: relative; height: 24px; overflow: visible; }
.bar { position: absolute; top: 6px; height: 12px; min-width: 2px; background: var(--c); border-radius: 2px; }
.bar.tail { background: repeating-linear-gradient(135deg, var(--c) 0 3px, transparent 3px 7px); opacity: .6;
  border-radius: 0 2px 2px 0; }
.tick { position: absolute; top: 3px; width: 1px; height: 18px; background: #111827; opacity: .35; }
.tick.error { background: var(--error); opacity: 1; width: 2px; }
.axis { position: relative; height: 24px; }
.axis span { position: absolute; top: 4px; font-weight: 400; font-size: 11px; color: #6b7280;
  transform: translateX(-50%); white-space: nowrap; }
.axis span.first { transform: none; }
.axis span.end { transform: translateX(-100%); }
.edge { --c: var(--edge); } .request { --c: var(--request); } .call { --c: var(--call); }
.task { --c: var(--task); } .span { --c: var(--span); } .err { --c: var(--error); }
section { padding: 10px 16px; }
#detail { border-top: 2px solid #e5e7eb; }
#detail h2, #unplaced h2 { font-size: 14px; margin: 4px 0 8px; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: 3px 8px; border-bottom: 1px solid #f3f4f6; vertical-align: top; }
th { color: #6b7280; font-weight: 500; white-space: nowrap; }
.fields td:first-child { color: #6b7280; width: 150px; white-space: nowrap; }
.mono, .fields td, pre { font-family: ui-monospace, monospace; font-size: 12px; }
table.lines { table-layout: fixed; }
.lines th:nth-child(1) { width: 70px; } .lines th:nth-child(2) { width: 160px; }
.lines th:nth-child(3) { width: 90px; } .lines th:nth-child(4) { width: 190px; }
.lines th:nth-child(5) { width: 140px; }
.lines td { overflow-wrap: anywhere; }
.lines tr.line { cursor: pointer; }
.lines tr.line:hover { background: #f9fafb; }
.lines tr.error td { color: var(--error); }
.lines td.msg { word-break: break-word; }
pre { margin: 4px 0; white-space: pre-wrap; word-break: break-all; background: #f9fafb; padding: 6px; }
.note { color: #6b7280; }
.open-note { color: #b45309; }
button.more { margin: 6px 0; }
"""

SCRIPT = r"""
"use strict";
(function () {
  var began = performance.now();
  var data = JSON.parse(document.getElementById("waterfall-data").textContent);
  var total = Math.max(data.duration_ms, 0.001);
  var PAGE = 500;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function ms(value) { return value === null || value === undefined ? "" : value.toFixed(1); }
  function pct(value) { return Math.min(100, Math.max(0, value / total * 100)); }
  function kindClass(span) { return span.error ? "err" : span.kind; }
  function duration(span) {
    return span.duration_ms !== null ? ms(span.duration_ms) : "\u2265" + ms(span.last_ms - span.start_ms);
  }

  // header
  var head = document.getElementById("head");
  head.appendChild(el("h1", "", "trackline trace " + data.query));
  var facts = el("dl");
  function fact(name, value) {
    if (!value) { return; }
    var pair = el("div");
    pair.appendChild(el("dt", "", name));
    pair.appendChild(el("dd", "", value));
    facts.appendChild(pair);
  }
  fact("tracking_id", data.tracking_ids.join(", "));
  fact("trace_id", data.trace_ids.join(", "));
  fact("from", data.start);
  fact("to", data.end);
  fact("duration", ms(data.duration_ms) + " ms");
  var counts = data.counts;
  fact("spans", counts.spans + (counts.open ? " (" + counts.open + " open-ended)" : "") +
       (counts.errors ? ", " + counts.errors + " with errors" : ""));
  fact("lines", counts.lines + (counts.unplaced ? " (" + counts.unplaced + " in no span)" : ""));
  head.appendChild(facts);
  var legend = el("div", "legend");
  [["edge", "edge (nginx)"], ["request", "request"], ["call", "outgoing call"], ["task", "Celery task"],
   ["span", "other span"], ["err", "error"]].forEach(function (pair) {
    legend.appendChild(el("span", pair[0], pair[1]));
  });
  head.appendChild(legend);

  // rows
  var rows = document.getElementById("rows");
  var heading = el("div", "row heading");
  ["span", "host", "service", "status", "start ms", "dur ms"].forEach(function (name, index) {
    heading.appendChild(el("div", index >= 3 ? "num" : "", name));
  });
  var axis = el("div", "axis");
  var step = Math.pow(10, Math.floor(Math.log10(total / 6)));
  [1, 2, 5, 10].some(function (factor) {
    if (total / (step * factor) <= 8) { step = step * factor; return true; }
    return false;
  });
  var ticks = [];
  for (var at = 0; at <= total + 1e-9; at += step) {
    var label = el("span", at === 0 ? "first" : "", (at === 0 ? "0" : ms(at).replace(/\.0$/, "")) + " ms");
    label.style.left = pct(at) + "%";
    axis.appendChild(label);
    ticks.push([at, label]);
  }
  var endLabel = el("span", "end", ms(total) + " ms");
  endLabel.style.left = "100%";
  axis.appendChild(endLabel);
  heading.appendChild(axis);
  rows.appendChild(heading);
  var axisWidth = axis.getBoundingClientRect().width;
  ticks.forEach(function (tick) {  // a label that would run into the end's is left out
    if (tick[0] > 0 && pct(tick[0]) / 100 * axisWidth > axisWidth - 40 - endLabel.getBoundingClientRect().width) {
      axis.removeChild(tick[1]);
    }
  });

  var byId = {};
  var order = [];
  function where(span) { return span.where || span.host || ""; }
  function addRow(span, depth, parentId) {
    byId[span.id] = span;
    order.push(span.id);
    var row = el("div", "row " + kindClass(span) + (span.error ? " error" : ""));
    row.setAttribute("role", "treeitem");
    row.dataset.id = span.id;
    row.dataset.parent = parentId || "";
    row.dataset.depth = String(depth);
    row.dataset.kind = span.kind;
    var name = el("div", "name");
    name.style.paddingLeft = (6 + depth * 16) + "px";
    var toggle = el("button", "toggle", span.children.length ? "\u25be" : "");
    toggle.type = "button";
    toggle.tabIndex = -1;
    if (span.children.length) {
      toggle.title = "fold or unfold the spans under this one";
      toggle.addEventListener("click", function (event) { event.stopPropagation(); fold(span.id, toggle); });
    }
    name.appendChild(toggle);
    name.appendChild(el("span", "kind " + kindClass(span), span.kind));
    name.appendChild(el("span", "label", span.name || "(no name)"));
    row.appendChild(name);
    row.appendChild(el("div", "mono", where(span)));
    row.appendChild(el("div", "", span.service));
    row.appendChild(el("div", "num status" + (span.error ? " error" : ""), span.status || "-"));
    row.appendChild(el("div", "num", ms(span.start_ms)));
    row.appendChild(el("div", "num", duration(span)));
    var track = el("div", "track");
    var bar = el("div", "bar " + kindClass(span));
    var known = span.end_ms !== null ? span.end_ms : span.last_ms;
    bar.style.left = pct(span.start_ms) + "%";
    bar.style.width = Math.max(pct(known) - pct(span.start_ms), 0) + "%";
    track.appendChild(bar);
    if (span.open) {
      var tail = el("div", "bar tail " + kindClass(span));
      tail.style.left = pct(known) + "%";
      tail.style.width = Math.max(100 - pct(known), 0) + "%";
      track.appendChild(tail);
    }
    span.lines.slice(0, 200).forEach(function (line) {
      var tick = el("div", "tick" + (line.error ? " error" : ""));
      tick.style.left = pct(line.offset_ms) + "%";
      track.appendChild(tick);
    });
    row.appendChild(track);
    row.title = span.kind + ": " + (span.name || "") + "\n" + (span.status ? "status " + span.status + ", " : "") +
      "start " + ms(span.start_ms) + " ms, " + (span.open ? "open-ended (" + span.open_reason + ")" :
      "duration " + duration(span) + " ms") + "\n" + span.lines.length + " line(s)" +
      (span.span_id ? "\nspan_id " + span.span_id : "") + "\nclick for its lines and fields";
    row.addEventListener("click", function () { select(span.id); });
    rows.appendChild(row);
    span.children.forEach(function (child) { addRow(child, depth + 1, span.id); });
  }
  data.spans.forEach(function (root) { addRow(root, 0, ""); });

  function descendants(id) {
    var found = [];
    (byId[id].children || []).forEach(function (child) {
      found.push(child.id);
      found = found.concat(descendants(child.id));
    });
    return found;
  }
  function rowOf(id) {
    var all = rows.querySelectorAll(".row[data-id]");
    for (var i = 0; i < all.length; i++) { if (all[i].dataset.id === id) { return all[i]; } }
    return null;
  }
  function fold(id, toggle) {
    var hide = toggle.textContent === "\u25be";
    toggle.textContent = hide ? "\u25b8" : "\u25be";
    descendants(id).forEach(function (child) {
      var row = rowOf(child);
      if (!row) { return; }
      row.classList.toggle("hidden", hide);
      var inner = row.querySelector(".toggle");
      if (!hide && inner && inner.textContent === "\u25b8") { inner.textContent = "\u25be"; }
    });
  }

  // details of a span: its fields, then its lines (a line opens to its whole record and traceback)
  var detail = document.getElementById("detail");
  function fieldsTable(pairs) {
    var table = el("table", "fields");
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") { return; }
      var tr = el("tr");
      tr.appendChild(el("td", "", pair[0]));
      tr.appendChild(el("td", "", typeof pair[1] === "object" ? JSON.stringify(pair[1]) : pair[1]));
      table.appendChild(tr);
    });
    return table;
  }
  function linesTable(lines, withSource) {
    var wrap = el("div");
    var table = el("table", "lines");
    var headRow = el("tr");
    ["+ms", "time", "level", "logger"].concat(withSource ? ["file"] : []).concat(["message"])
      .forEach(function (name) { headRow.appendChild(el("th", "", name)); });
    table.appendChild(headRow);
    var shown = 0;
    var opened = false;  // the table's first traceback is open, the others a click away
    function more() {
      lines.slice(shown, shown + PAGE).forEach(function (line) {
        var tr = el("tr", "line" + (line.error ? " error" : ""));
        tr.appendChild(el("td", "num mono", ms(line.offset_ms)));
        tr.appendChild(el("td", "mono", line.time.slice(11)));
        tr.appendChild(el("td", "", (line.error ? "\u2717 " : "") + line.level));
        tr.appendChild(el("td", "mono", line.logger));
        if (withSource) { tr.appendChild(el("td", "mono", line.source.split("/").pop())); }
        var msg = el("td", "msg", line.message);
        if (line.traceback) {
          var details = el("details");
          details.open = !opened;
          opened = true;
          details.appendChild(el("summary", "", "traceback"));
          details.appendChild(el("pre", "", line.traceback));
          details.addEventListener("click", function (event) { event.stopPropagation(); });
          msg.appendChild(details);
        }
        tr.appendChild(msg);
        var open = null;
        tr.addEventListener("click", function () {
          if (open) { open.remove(); open = null; return; }
          open = el("tr", "record");
          var cell = el("td");
          cell.colSpan = withSource ? 6 : 5;
          cell.appendChild(el("pre", "", JSON.stringify(line.record, null, 2)));
          cell.appendChild(el("div", "note", line.source));
          open.appendChild(cell);
          tr.after(open);
        });
        table.appendChild(tr);
      });
      shown = Math.min(lines.length, shown + PAGE);
      button.hidden = shown >= lines.length;
      button.textContent = "show " + Math.min(PAGE, lines.length - shown) + " more of " +
        (lines.length - shown) + " lines";
    }
    var button = el("button", "more");
    button.type = "button";
    button.addEventListener("click", more);
    wrap.appendChild(table);
    wrap.appendChild(button);
    more();
    return wrap;
  }
  function select(id) {
    var span = byId[id];
    var previous = rows.querySelector(".row.selected");
    if (previous) { previous.classList.remove("selected"); }
    var row = rowOf(id);
    if (row) { row.classList.add("selected"); }
    try { history.replaceState(null, "", "#span=" + encodeURIComponent(id)); } catch (error) { /* file: in some */ }
    while (detail.firstChild) { detail.removeChild(detail.firstChild); }
    detail.hidden = false;
    detail.appendChild(el("h2", "", span.kind + ": " + (span.name || "(no name)")));
    if (span.open) { detail.appendChild(el("p", "open-note", "open-ended: " + span.open_reason)); }
    var pairs = [["status", span.status], ["start", span.start + " (+" + ms(span.start_ms) + " ms)"],
                 ["end", span.end ? span.end + " (+" + ms(span.end_ms) + " ms)" : "not in the logs"],
                 ["duration", span.duration_ms !== null ? ms(span.duration_ms) + " ms" : duration(span) + " ms so far"],
                 ["host", span.host], ["log dir", span.log_dir], ["service", span.service],
                 ["tracking_id", span.tracking_id], ["trace_id", span.trace_id], ["span_id", span.span_id],
                 ["parent_span_id", span.parent_span_id], ["placed", span.placed]];
    Object.keys(span.fields).forEach(function (key) { pairs.push([key, span.fields[key]]); });
    detail.appendChild(fieldsTable(pairs));
    detail.appendChild(el("h2", "", span.lines.length + " line(s)"));
    detail.appendChild(linesTable(span.lines, true));
  }
  document.addEventListener("keydown", function (event) {
    var current = rows.querySelector(".row.selected");
    if (!current || (event.key !== "ArrowDown" && event.key !== "ArrowUp")) { return; }
    var next = event.key === "ArrowDown" ? current.nextElementSibling : current.previousElementSibling;
    while (next && (next.classList.contains("hidden") || !next.dataset.id)) {
      next = event.key === "ArrowDown" ? next.nextElementSibling : next.previousElementSibling;
    }
    if (next) { event.preventDefault(); select(next.dataset.id); next.scrollIntoView({block: "nearest"}); }
  });

  // lines in no span
  var unplaced = document.getElementById("unplaced");
  if (data.unplaced.length) {
    unplaced.appendChild(el("h2", "", data.unplaced.length + " line(s) in no span (no span_id: their place in the " +
                                       "tree is not known)"));
    unplaced.appendChild(linesTable(data.unplaced, true));
  } else {
    unplaced.hidden = true;
  }

  // open the span the address names (#span=ID), else the first with a traceback, else the first with an error,
  // else the first one
  function has(test) { return order.filter(function (id) { return test(byId[id]); })[0]; }
  var named = location.hash.indexOf("#span=") === 0 ? decodeURIComponent(location.hash.slice(6)) : "";
  var first = (Object.prototype.hasOwnProperty.call(byId, named) ? named : "") ||
    has(function (span) { return span.lines.some(function (line) { return line.traceback; }); }) ||
    has(function (span) { return span.error; }) || order[0];
  if (first) { select(first); } else { detail.hidden = true; }
  document.body.dataset.ready = "true";
  document.body.dataset.drawnMs = String(Math.round(performance.now() - began));
})();
"""


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def embed(value: object) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` (so no ``</script>``
    and no ``<!--``), all of it ASCII (so no U+2028 either)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(tree: Tree) -> str:
    """The HTML page of ``tree``."""
    policy = (f"default-src 'none'; script-src '{_hash(SCRIPT)}'; style-src '{_hash(STYLE)}'; img-src data:; "
              "base-uri 'none'; form-action 'none'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(policy)}\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>trackline trace {html.escape(tree.query)}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        "<header id=\"head\"></header>\n<div id=\"rows\" role=\"tree\"></div>\n"
        "<section id=\"detail\" hidden></section>\n<section id=\"unplaced\"></section>\n"
        "<noscript>This page draws the waterfall with JavaScript; its data is the JSON in the element"
        " #waterfall-data (the same as trackline trace ID --json).</noscript>\n"
        f"<script type=\"application/json\" id=\"waterfall-data\">{embed(tree_json(tree))}</script>\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )
