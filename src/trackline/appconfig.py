"""``app.yaml``: read, checked, and turned into the served app's config and the tracking-ID policy.

The one owner of the file: ``trackline serve`` (and each HUP), ``trackline worker`` and ``trackline check-config``
all load it here, and hand the ``AppConfig`` on. Its keys are Flask config keys for the served app (trackline's
own ``TRACKING_ID_*``, ``TRACE_*`` and ``TRACKLINE_*`` among them: docs/configuration.md). No Flask import.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trackline.config import APP_FILE, ConfigError, read_yaml
from trackline.policy import DEFAULTS, TrackingPolicy
from trackline.redaction import DEFAULT_HEADERS, DEFAULT_QUERY, Redactor

#: Give a served Flask app the demo API's JSON envelope error handlers (not put in its config).
ERROR_ENVELOPE = "TRACKLINE_ERROR_ENVELOPE"
#: A request still running after this many seconds is logged once (WARNING) and its access line says ``slow``;
#: ``null`` turns it off (docs/forensics.md).
SLOW_REQUEST = "TRACKLINE_SLOW_REQUEST_SECONDS"
SLOW_REQUEST_DEFAULT = 10.0

#: Query parameters and headers whose values no log line shows; access lines of 2xx answers kept 1 in N per path
#: (docs/redaction.md).
REDACT_QUERY = "TRACKLINE_REDACT_QUERY"
REDACT_HEADERS = "TRACKLINE_REDACT_HEADERS"
ACCESS_SAMPLE = "TRACKLINE_ACCESS_SAMPLE"

#: Prefixes of trackline's own keys: a key with one that trackline does not know is a misspelling.
OWN_PREFIXES = ("TRACKING_ID_", "TRACE_", "TRACKLINE_")
OWN_KEYS = (*DEFAULTS, ERROR_ENVELOPE, SLOW_REQUEST, REDACT_QUERY, REDACT_HEADERS, ACCESS_SAMPLE)

#: Keys whose values check-config shows; other keys (``SECRET_KEY``, a database URL) only by name.
SHOWN_KEYS = frozenset(OWN_KEYS) | {"MAX_CONTENT_LENGTH", "DOWNSTREAM_URL"}

#: How many IDs the check draws from TRACKING_ID_GENERATOR (so that one that is only sometimes wrong shows).
GENERATOR_SAMPLES = 20

#: What a generated tracking ID must look like to be sent as a header value: visible ASCII, no spaces.
_HEADER_SAFE = re.compile(r"[!-~]+")

#: A header name (RFC 9110 token) and a query parameter name (no separator, no space) in the redaction lists.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PARAMETER_NAME = re.compile(r"[^&=#?\s]+")


@dataclass(frozen=True)
class AppConfig:
    """The checked contents of ``app.yaml`` (``raw``) and the policy they make."""

    raw: Mapping[str, Any]
    policy: TrackingPolicy

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any], where: str = APP_FILE) -> AppConfig:
        """Check ``raw`` (what ``app.yaml`` holds); a ``ConfigError`` has one line per problem, each naming
        ``where``."""
        problems = _key_problems(raw) or _value_problems(raw)
        policy = None
        if not problems:
            try:
                policy = TrackingPolicy.from_config(raw)
            except ValueError as exc:
                problems = [str(exc)]
        if policy is not None and not problems:
            problems = _generator_problems(policy, raw)
        if problems or policy is None:
            raise ConfigError("\n".join(f"{where}: {problem}" for problem in problems))
        return cls(dict(raw), policy)

    @property
    def settings(self) -> dict[str, Any]:
        """What goes into the served app's ``app.config``: every key but ``TRACKLINE_ERROR_ENVELOPE``."""
        return {key: value for key, value in self.raw.items() if key != ERROR_ENVELOPE}

    @property
    def error_envelope(self) -> bool:
        return bool(self.raw.get(ERROR_ENVELOPE, False))

    @property
    def slow_request_seconds(self) -> float | None:
        """``TRACKLINE_SLOW_REQUEST_SECONDS`` (10 unless set; ``None``: off)."""
        seconds = self.raw.get(SLOW_REQUEST, SLOW_REQUEST_DEFAULT)
        return None if seconds is None else float(seconds)

    @property
    def jobs_broker_url(self) -> str | None:
        """The demo API's Celery broker (``JOBS_BROKER_URL``), if set."""
        url = self.raw.get("JOBS_BROKER_URL")
        return str(url) if url else None

    @property
    def redactor(self) -> Redactor:
        """The parameters and headers whose values no log line shows (the defaults unless app.yaml lists them)."""
        return Redactor(self.raw.get(REDACT_QUERY, DEFAULT_QUERY), self.raw.get(REDACT_HEADERS, DEFAULT_HEADERS))

    @property
    def access_sample(self) -> dict[str, int]:
        """Paths whose 2xx access lines are kept 1 in N (0: none)."""
        return dict(self.raw.get(ACCESS_SAMPLE) or {})

    def describe(self) -> str | None:
        """check-config's ``app settings:`` value: each key, with its value when it is no secret."""
        if not self.raw:
            return None
        return ", ".join(f"{k}={v!r}" if k in SHOWN_KEYS else k for k, v in sorted(self.raw.items()))


def load_app_config(conf_dir: Path) -> AppConfig:
    """``conf_dir``'s ``app.yaml`` checked (no file: the defaults); a ``ConfigError`` lists every problem."""
    path = conf_dir / APP_FILE
    return AppConfig.from_settings(read_yaml(path) if path.exists() else {}, str(path))


def _key_problems(raw: Mapping[str, Any]) -> list[str]:
    """Keys Flask would ignore (not upper-case strings) and misspelt trackline keys."""
    problems = []
    for key in raw:
        if not isinstance(key, str) or key != key.upper():
            problems.append(f"{key!r}: Flask config keys are upper case (e.g. {str(key).upper()})")
        elif key.startswith(OWN_PREFIXES) and key not in OWN_KEYS:
            close = difflib.get_close_matches(key, OWN_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(OWN_KEYS)}"
            problems.append(f"unknown trackline key {key} ({hint})")
    return problems


def _value_problems(raw: Mapping[str, Any]) -> list[str]:
    """The values trackline and its demo API read, besides the policy's."""
    problems = []
    if not isinstance(raw.get(ERROR_ENVELOPE, False), bool):
        problems.append(f"{ERROR_ENVELOPE}: must be true or false, not {raw[ERROR_ENVELOPE]!r}")
    slow = raw.get(SLOW_REQUEST)
    if slow is not None and (isinstance(slow, bool) or not isinstance(slow, (int, float)) or slow <= 0):
        problems.append(f"{SLOW_REQUEST}: must be a number of seconds above 0 (or null: off), not {slow!r}")
    limit = raw.get("MAX_CONTENT_LENGTH")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        problems.append(f"MAX_CONTENT_LENGTH: must be a number of bytes (or null), not {limit!r}")
    url = raw.get("DOWNSTREAM_URL")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        problems.append(f"DOWNSTREAM_URL: must be an http:// or https:// URL, not {url!r}")
    timeout = raw.get("JOBS_PUBLISH_TIMEOUT")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        problems.append(f"JOBS_PUBLISH_TIMEOUT: must be a number of seconds above 0, not {timeout!r}")
    problems += _redaction_problems(raw)
    return problems


def _redaction_problems(raw: Mapping[str, Any]) -> list[str]:
    """The redaction lists and the access sample (docs/redaction.md)."""
    problems = []
    for key, shape, what in ((REDACT_QUERY, _PARAMETER_NAME, "query parameter name"),
                             (REDACT_HEADERS, _HEADER_NAME, "header name")):
        names = raw.get(key, [])
        if not isinstance(names, list):
            problems.append(f"{key}: must be a list of {what}s ([] for none), not {names!r}")
            continue
        wrong = [name for name in names if not (isinstance(name, str) and shape.fullmatch(name))]
        if wrong:
            problems.append(f"{key}: {wrong[0]!r} is not a {what}")
    sample = raw.get(ACCESS_SAMPLE, {})
    if not isinstance(sample, Mapping):
        problems.append(f"{ACCESS_SAMPLE}: must be a mapping of paths to N (keep 1 in N; 0 keeps none), "
                        f"e.g. {{/api/health: 100}}, not {sample!r}")
        return problems
    for path, keep in sample.items():
        if not (isinstance(path, str) and path.startswith("/")) or "?" in str(path):
            problems.append(f"{ACCESS_SAMPLE}: {path!r} is not a path (it starts with /, without a query)")
        elif isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            problems.append(f"{ACCESS_SAMPLE}: {path}: must be a whole number N (keep 1 in N; 0 keeps none), "
                            f"not {keep!r}")
    return problems


def _generator_problems(policy: TrackingPolicy, raw: Mapping[str, Any]) -> list[str]:
    """A few generated IDs, which must fit a response header and pass the policy's own check (another trackline
    receiving one would otherwise replace it)."""
    for _ in range(GENERATOR_SAMPLES):
        try:
            sample = policy.generate()
        except Exception as exc:
            return [f"TRACKING_ID_GENERATOR: calling it failed: {type(exc).__name__}: {exc}"]
        if not _HEADER_SAFE.fullmatch(sample):
            return [f"TRACKING_ID_GENERATOR: made {sample!r}: an ID goes into a response header, so it must be "
                    "visible ASCII with no spaces"]
        if not policy.pattern.fullmatch(sample):
            limit = int(raw.get("TRACKING_ID_MAX_LENGTH", DEFAULTS["TRACKING_ID_MAX_LENGTH"]))
            why = (f"{len(sample)} characters, over TRACKING_ID_MAX_LENGTH ({limit})" if len(sample) > limit
                   else "a character outside TRACKING_ID_CHARACTERS")
            return [f"TRACKING_ID_GENERATOR: made {sample!r} ({why}): a trackline receiving it would replace it"]
    return []
