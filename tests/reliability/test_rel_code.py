"""No exception in the package is swallowed: a bare `except:` or an `except ...: pass` hides
exactly the faults this suite is about (a broken video, a cut download, a full disk)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recipe_utils

pytestmark = pytest.mark.reliability

PACKAGE = Path(recipe_utils.__file__).resolve().parent


def handlers() -> list[tuple[str, ast.ExceptHandler]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = path.relative_to(PACKAGE.parent)
        found += [
            (f"{name}:{node.lineno}", node)
            for node in ast.walk(tree)
            if isinstance(node, ast.ExceptHandler)
        ]
    return found


def does_nothing(body: list[ast.stmt]) -> bool:
    """`pass`, `...` or a lone string: the handler drops the exception on the floor."""
    return all(
        isinstance(stmt, ast.Pass)
        or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
        for stmt in body
    )


def test_package_has_exception_handlers_to_check():
    assert len(handlers()) > 5  # the walk really looks at recipe_utils/


def test_no_bare_except():
    bare = [where for where, node in handlers() if node.type is None]
    assert bare == [], f"bare `except:` at {bare}; catch the exceptions you expect by name"


def test_no_swallowed_exception():
    swallowed = [where for where, node in handlers() if does_nothing(node.body)]
    assert swallowed == [], f"`except ...: pass` at {swallowed}; handle, re-raise or report"
