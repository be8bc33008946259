"""Editing a test's copy of a YAML config file (./conf's files, copied per test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def edit_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``edit`` to the parsed YAML at ``path`` and write it back."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
