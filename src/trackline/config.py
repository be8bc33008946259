"""Reading the operator's YAML files: parsing, ``${VAR:-default}`` expansion, one-line errors."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `trackline trace` reads YAML, not types
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^{}]*))?\}")
_MAX_NESTING = 8

CONF_DIR_ENV = "TRACKLINE_CONF_DIR"

#: The files of a config directory (conf/, /etc/trackline).
GUNICORN_FILE = "gunicorn.yaml"
LOGGING_FILE = "logging.yaml"
APP_FILE = "app.yaml"
WORKER_FILE = "worker.yaml"


class ConfigError(Exception):
    """A configuration problem, worded as one line an operator can act on."""


@dataclass(frozen=True)
class FromFile:
    """A ``!file PATH`` value: the content of the file at ``PATH`` (after ``${VAR}`` expansion), one trailing
    newline removed. For secrets: ``SECRET_KEY: !file ${CREDENTIALS_DIRECTORY}/secret_key``."""

    path: str

    def read(self, env: Mapping[str, str], where: str) -> str:
        path = expand_env(self.path, env, where)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"{where}: cannot read !file {path}: {reason}") from None
        return text[:-1] if text.endswith("\n") else text


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` plus the ``!file`` tag."""


def _file_tag(loader: yaml.SafeLoader, node: yaml.Node) -> FromFile:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!file takes a path, not a list or mapping",
                                                node.start_mark)
    return FromFile(loader.construct_scalar(node))


_Loader.add_constructor("!file", _file_tag)


def conf_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The configuration directory: explicit > $TRACKLINE_CONF_DIR > systemd's $CONFIGURATION_DIRECTORY > ./conf."""
    chosen = explicit or os.environ.get(CONF_DIR_ENV)
    if not chosen and os.environ.get("CONFIGURATION_DIRECTORY"):
        # systemd lists its directories separated by ':'; the first is ours.
        chosen = os.environ["CONFIGURATION_DIRECTORY"].split(":")[0]
    directory = Path(chosen or "conf")
    if not directory.is_dir():
        raise ConfigError(f"config directory {directory} does not exist (use --conf-dir or ${CONF_DIR_ENV})")
    return directory


def writable_directory(directory: Path, where: str, create: bool) -> None:
    """Make sure files can be created in ``directory``: create it (``create``) or check that it could be."""
    if create:
        try:
            directory.mkdir(mode=0o750, parents=True, exist_ok=True)  # logs are not for every user to read
        except OSError as exc:
            raise ConfigError(f"{where}: cannot create directory {directory}: {exc.strerror or exc}") from None
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # without ``create``: the directory that mkdir would write into
    if not existing.is_dir():
        raise ConfigError(f"{where}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: directory {existing} is not writable")
    if not create and existing != directory:
        _try_mkdir(existing, directory, where)


def _try_mkdir(parent: Path, directory: Path, where: str) -> None:
    """Create and remove a directory in ``parent`` as ``mkdir`` would for ``directory``: the filesystem may
    refuse what the permission bits allow (``/proc``, a read-only mount)."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".trackline-check-", dir=parent))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot create directory {directory}: {exc.strerror or exc}") from None


def expand_env(value: str, env: Mapping[str, str], where: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}`` (defaults may nest) from ``env``."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is None:
            raise ConfigError(f"{where}: ${{{name}}} is not set and has no default (write ${{{name}:-value}})")
        return default

    for _ in range(_MAX_NESTING):
        expanded = _VAR.sub(substitute, value)
        if expanded == value:
            return expanded
        value = expanded
    raise ConfigError(f"{where}: ${{...}} nested more than {_MAX_NESTING} deep")


def _expand_tree(node: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(node, FromFile):
        return node.read(env, where)
    if isinstance(node, str):
        return expand_env(node, env, where) if "${" in node else node
    if isinstance(node, dict):
        return {key: _expand_tree(value, env, f"{where}.{key}" if where else str(key)) for key, value in node.items()}
    if isinstance(node, list):
        return [_expand_tree(value, env, f"{where}[{i}]") for i, value in enumerate(node)]
    return node


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where the parser stopped and why, leading with the line to fix: for an unclosed bracket or quote that
    is the line where it was opened (the parser notices only later), quoted from ``text``."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "'\\t'" in problem:
        problem += " (indent with spaces, not tabs)"
    mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    if mark is None:
        return f": {problem}"
    lines = text.splitlines()

    def quoted(line: int) -> str:
        return f" `{lines[line].strip()}`" if line < len(lines) and lines[line].strip() else ""

    if context is not None and context.line != mark.line:
        started = f"{getattr(exc, 'context', None) or 'parsing'} that starts at line {context.line + 1}"
        return (f" at line {context.line + 1}{quoted(context.line)}: {problem} at line {mark.line + 1}, column"
                f" {mark.column + 1} ({started})")
    return f" at line {mark.line + 1}, column {mark.column + 1}{quoted(mark.line)}: {problem}"


def read_yaml(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse a YAML mapping from ``path`` with environment expansion in every string and ``!file`` values read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML{_yaml_problem(exc, text)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    try:
        return _expand_tree(data, os.environ if env is None else env, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
