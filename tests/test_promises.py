"""docs/promises.md ties each promise of the README and the docs to tests: every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "promises.md"


def named_tests() -> list[tuple[str, str]]:
    return re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", PAGE.read_text(encoding="utf-8"))


def test_every_promise_names_a_test_and_every_named_test_exists():
    rows = [line for line in PAGE.read_text(encoding="utf-8").splitlines() if line.startswith("| ")][2:]
    assert len(rows) >= 25 and all("`tests/" in row for row in rows), "a promise without a test"
    missing = []
    for path, name in named_tests():
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8")) if (ROOT / path).is_file() else None
        functions = (
            {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)} if tree else set()
        )
        if name not in functions:
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/promises.md names tests that do not exist: {missing}"
