"""Load ``logging.yaml`` (a dictConfig document), check it without side effects, and apply it."""

from __future__ import annotations

import copy
import inspect
import logging
import logging.config
import os
from pathlib import Path
from typing import Any

from trackline.config import ConfigError, read_yaml, writable_directory


def load_logging_config(path: Path, create_dirs: bool = True) -> dict[str, Any]:
    """Read ``path`` into a dictConfig dict, with ``${VAR:-default}`` expanded and its log files checked.

    Missing log directories are created, or with ``create_dirs=False`` only checked to be creatable.
    """
    config = read_yaml(path)
    if config.get("version") != 1:
        raise ConfigError(f"{path}: 'version: 1' is required (this is a logging.config.dictConfig document)")
    for name, handler in _handlers(config, path).items():
        if "filename" in handler:
            _check_log_file(Path(str(handler["filename"])), f"{path}: handler {name!r}", create_dirs)
    return config


def handler_files(config: dict[str, Any], path: Path, used_only: bool = False) -> list[Path]:
    """The files the handlers of ``config`` (read from ``path``) write, each once, in the document's order;
    ``used_only``: only those of handlers that a logger has (as ``trackline serve`` applies it: not ``worker_file``,
    which only ``trackline worker`` gives its root logger)."""
    handlers = _handlers(config, path)
    used = used_handlers(config) if used_only else set(handlers)
    return list(dict.fromkeys(Path(str(handler["filename"])) for name, handler in handlers.items()
                              if name in used and "filename" in handler))


def destinations(config: dict[str, Any], path: Path, used_only: bool = False) -> str:
    """Where the lines of ``config`` (read from ``path``) go, as the start line and ``check-config`` say it: the
    files (``handler_files``), else ``stdout (path)``."""
    return ", ".join(map(str, handler_files(config, path, used_only))) or f"stdout ({path})"


def used_handlers(config: dict[str, Any]) -> set[str]:
    """The names of the handlers the root logger and the named loggers have, and of those they hand lines to (a
    ``MemoryHandler``'s ``target``, a ``QueueHandler``'s ``handlers``)."""
    handlers = config.get("handlers") or {}
    loggers = [config.get("root") or {}, *(config.get("loggers") or {}).values()]
    waiting = [name for logger in loggers if isinstance(logger, dict) for name in logger.get("handlers") or ()]
    used: set[str] = set()
    while waiting:
        name = waiting.pop()
        if name in used or name not in handlers:
            continue
        used.add(name)
        handler = handlers[name]
        waiting += [handler["target"]] if isinstance(handler.get("target"), str) else []
        waiting += [other for other in handler.get("handlers") or () if isinstance(other, str)]
    return used


def logged_files(path: Path) -> list[Path]:
    """The files ``path``'s handlers write (``${VAR:-default}`` expanded); an error if there are none."""
    files = handler_files(read_yaml(path), path)
    if not files:
        raise ConfigError(f"{path}: no handler writes a file ('filename')")
    return files


def check_logging_config(path: Path, create_dirs: bool = True) -> dict[str, Any]:
    """``load_logging_config`` and ``validate_logging_config``: the config, ready to apply."""
    config = load_logging_config(path, create_dirs)
    validate_logging_config(config, path)
    return config


def validate_logging_config(config: dict[str, Any], path: Path) -> None:
    """Build every formatter, filter and handler of ``config`` without touching the running logging setup.

    File handlers are built with ``delay=True`` so no file is opened; writability was checked on load.
    """
    trial = copy.deepcopy(config)
    for handler in _handlers(trial, path).values():
        _delay_file_opening(handler)
    configurator = logging.config.DictConfigurator(trial)
    built: list[logging.Handler] = []
    try:
        for section, build in (
            ("formatters", configurator.configure_formatter),
            ("filters", configurator.configure_filter),
            ("handlers", configurator.configure_handler),
        ):
            items: dict[str, Any] = configurator.config.get(section, {})
            for name in list(items):
                try:
                    items[name] = build(items[name])
                except Exception as exc:  # dictConfig raises anything a user class raises
                    raise ConfigError(f"{path}: {section[:-1]} {name!r}: {_reason(exc)}") from None
                if section == "handlers":
                    built.append(items[name])
        _check_loggers(trial, path)
    finally:
        for made in built:
            made.close()


def configure_logging(path: Path) -> dict[str, Any]:
    """Load, check and apply ``path``; return the applied config (gunicorn takes it as ``logconfig_dict``)."""
    config = check_logging_config(path)
    try:
        logging.config.dictConfig(config)
    except Exception as exc:
        raise ConfigError(f"{path}: {_reason(exc)}") from None
    return config


def _handlers(config: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    handlers = config.get("handlers") or {}
    if not isinstance(handlers, dict) or not all(isinstance(h, dict) for h in handlers.values()):
        raise ConfigError(f"{path}: 'handlers' must map handler names to mappings")
    return handlers


def _check_log_file(file: Path, where: str, create_dir: bool) -> None:
    """The log file can be appended to: its directory exists (or is created) and is writable, and the file is no
    symbolic link (the log writer does not write through one: logs/handlers.py)."""
    if file.is_symlink():
        raise ConfigError(f"{where}: log file {file} is a symbolic link, which trackline does not write through"
                          " (remove it; the next start creates the file)")
    if file.exists():
        if not os.access(file, os.W_OK):
            raise ConfigError(f"{where}: log file {file} is not writable")
        return
    writable_directory(file.parent, where, create_dir)


def _delay_file_opening(handler: dict[str, Any]) -> None:
    target = handler.get("class") or handler.get("()")
    if not isinstance(target, str):
        return
    try:
        klass = logging.config.BaseConfigurator({}).resolve(target)
    except (ImportError, ValueError):
        return  # reported with the handler's name when it is built
    if isinstance(klass, type) and issubclass(klass, logging.FileHandler) \
            and "delay" in inspect.signature(klass).parameters:
        handler["delay"] = True


def _check_loggers(config: dict[str, Any], path: Path) -> None:
    handlers = set(config.get("handlers") or {})
    loggers = dict(config.get("loggers") or {})
    if "root" in config:
        loggers["root"] = config["root"]
    for name, logger in loggers.items():
        if not isinstance(logger, dict):
            raise ConfigError(f"{path}: logger {name!r} must be a mapping")
        for handler in logger.get("handlers") or []:
            if handler not in handlers:
                raise ConfigError(f"{path}: logger {name!r} uses undefined handler {handler!r}")
        if "level" in logger:
            try:
                logging._checkLevel(logger["level"])  # type: ignore[attr-defined]  # the check dictConfig applies
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{path}: logger {name!r}: {exc}") from None


def _reason(exc: BaseException) -> str:
    """The innermost useful message of a dictConfig error chain, on one line."""
    reason = ""
    current: BaseException | None = exc
    while current is not None:
        text = str(current) or type(current).__name__
        if text not in reason:  # dictConfig often repeats its cause inside its own message
            reason = f"{reason}: {text}" if reason else text
        current = current.__cause__
    return reason.replace("\n", " ")
