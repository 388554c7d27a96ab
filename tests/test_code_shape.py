"""The shape the team agreed on for product code (STYLE.md): short functions."""

import ast
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRODUCT_PACKAGES = (
    "common",
    "config",
    "masterdata",
    "models_registry",
    "inspection",
    "reports",
    "demo",
)
MAX_FUNCTION_LINES = 60


def _product_sources() -> list[Path]:
    return sorted(
        path
        for package in PRODUCT_PACKAGES
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.name} "
        f"({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_the_product_code_is_found():
    assert len(_product_sources()) > 50


@pytest.mark.parametrize("path", _product_sources(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_no_function_is_longer_than_sixty_lines(path):
    assert _long_functions(path) == []
