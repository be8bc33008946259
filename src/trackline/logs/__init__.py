"""JSON logging for trackline: the formatter, the tracking-ID filter, the file handler and the YAML dictConfig
loader.

Free of Flask imports: gunicorn's master imports these before its workers exist.
"""

from trackline.logs.filters import TrackingIdFilter
from trackline.logs.formatter import JsonFormatter
from trackline.logs.handlers import WatchedAppendFileHandler
from trackline.logs.setup import check_logging_config, configure_logging

__all__ = [
    "JsonFormatter",
    "TrackingIdFilter",
    "WatchedAppendFileHandler",
    "check_logging_config",
    "configure_logging",
]
