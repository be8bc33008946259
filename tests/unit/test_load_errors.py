"""The one line of an app that cannot be loaded: the exception with the file and line where the app raised it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trackline.server.loading import _reason, _traceback


@pytest.fixture
def code(tmp_path: Path) -> Iterator[Path]:
    """A directory on sys.path holding the modules a test writes; they are forgotten afterwards."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def raised_by_import(name: str) -> BaseException:
    from gunicorn.util import import_app

    try:
        import_app(name)
    except Exception as exc:  # whatever the app raises, as the import check's child catches it
        tb = exc.__traceback__
        return exc.with_traceback(tb.tb_next if tb else None)  # from import_app on, as in the child
    raise AssertionError(f"{name} imported")


def test_a_key_error_deep_in_a_config_module_names_that_file_and_line(code: Path) -> None:
    (code / "acme").mkdir()
    (code / "acme" / "__init__.py").write_text("from acme.config import DATABASE_URL\n\n\ndef create_app():\n"
                                               "    return None\n")
    (code / "acme" / "config.py").write_text("import os\n\nDEBUG = False\n"
                                             "DATABASE_URL = os.environ['NO_SUCH_VAR_24']\n")
    exc = raised_by_import("acme:create_app()")
    assert _reason(exc) == "KeyError: 'NO_SUCH_VAR_24' (acme/config.py:4)"
    shown = _traceback(exc)
    assert shown.startswith("Traceback (most recent call last):") and shown.endswith("KeyError: 'NO_SUCH_VAR_24'")
    assert 'acme/config.py", line 4, in <module>' in shown and "from acme.config import" in shown
    assert "trackline/server/loading.py" not in shown and "<frozen importlib" not in shown


def test_a_syntax_error_names_the_file_and_line_the_compiler_stopped_at(code: Path) -> None:
    (code / "broken_syntax.py").write_text("x = 1\ndef app(environ, start_response):\n    return oops(\n")
    assert _reason(raised_by_import("broken_syntax:app")) == \
        "SyntaxError: '(' was never closed (broken_syntax.py:3)"


def test_a_missing_dependency_names_the_import_line_of_the_app(code: Path) -> None:
    (code / "needs_dep.py").write_text('"""An app."""\nimport no_such_dependency_24  # noqa\n')
    assert _reason(raised_by_import("needs_dep:app")) == \
        "ModuleNotFoundError: No module named 'no_such_dependency_24' (needs_dep.py:2)"


def test_what_only_the_loading_raised_has_no_place_the_spec_says_it(code: Path) -> None:
    (code / "plain_24.py").write_text("app = None\n")
    assert _reason(raised_by_import("no_module_24:app")) == "ModuleNotFoundError: No module named 'no_module_24'"
    assert _reason(raised_by_import("plain_24:nothing")) == "Failed to find attribute 'nothing' in 'plain_24'."


def test_an_error_raised_in_a_library_names_the_library_frame(code: Path) -> None:
    (code / "uses_json.py").write_text("import json\n\nSETTINGS = json.loads('{not json')\n")
    reason = _reason(raised_by_import("uses_json:app"))
    assert reason.startswith("JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2")
    assert reason.endswith(")") and " (json/decoder.py:" in reason
