"""Which files a ``logging.yaml`` writes, read without the logging runtime: what ``trackline trace`` reads when
no ``--log-dir`` is given.

``trackline.logs.setup.logged_files`` says the same, but importing it loads ``trackline.logs`` (the formatter,
the filter, the handlers, ``logging.config``), none of which ``trace`` uses; tests/unit/test_cli_start.py
holds the two to the same answers and messages.
"""

from __future__ import annotations

from pathlib import Path

from trackline.config import ConfigError, read_yaml


def logged_files(path: Path) -> list[Path]:
    """The files ``path``'s handlers write (``${VAR:-default}`` expanded), each once, in the document's order;
    an error if there are none."""
    config = read_yaml(path)
    handlers = config.get("handlers") or {}
    if not isinstance(handlers, dict) or not all(isinstance(h, dict) for h in handlers.values()):
        raise ConfigError(f"{path}: 'handlers' must map handler names to mappings")
    files = list(dict.fromkeys(Path(str(handler["filename"])) for handler in handlers.values()
                               if "filename" in handler))
    if not files:
        raise ConfigError(f"{path}: no handler writes a file ('filename')")
    return files
