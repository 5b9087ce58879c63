"""Layering rules import-linter cannot express, checked by reading the source tree.

* ``plyvel`` is imported only by ``chain/db/level.py`` (import-linter can forbid it in
  other packages, but not in all of ``chain`` except one module).
* ``trio`` is never imported in ``chain/`` or ``consensus/`` (import-linter checks this
  too; this test also catches imports inside functions and ``importlib`` strings).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chain", "consensus", "p2p", "node", "testnet", "cli")
PLYVEL_HOME = Path("chain/db/level.py")


def _imports(source: str) -> set[str]:
    """Top-level module names imported anywhere in ``source`` (any depth, any form)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def _sources(*packages: str) -> list[Path]:
    files: list[Path] = []
    for package in packages:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


@functools.cache
def _imports_of(path: Path) -> frozenset[str]:
    return frozenset(_imports(path.read_text(encoding="utf-8")))


def _importers(module: str, *packages: str) -> list[str]:
    return [
        str(path.relative_to(ROOT)) for path in _sources(*packages) if module in _imports_of(path)
    ]


def test_source_tree_is_where_we_think() -> None:
    assert (ROOT / "chain" / "tx.py").is_file()
    assert len(_sources("chain")) > 5


def test_plyvel_only_in_chain_db_level() -> None:
    offenders = [p for p in _importers("plyvel", *PACKAGES) if Path(p) != PLYVEL_HOME]
    assert offenders == [], f"plyvel imported outside {PLYVEL_HOME}: {offenders}"


@pytest.mark.parametrize("package", ["chain", "consensus"])
def test_no_trio_in_protocol_cores_and_chain(package: str) -> None:
    offenders = _importers("trio", package)
    assert offenders == [], f"trio imported in {package}/: {offenders}"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("import plyvel", True),
        ("import plyvel as p", True),
        ("from plyvel import DB", True),
        ("def f():\n    import trio.lowlevel\n", True),
        ("import importlib\nimportlib.import_module('plyvel')", True),
        ("x = __import__('trio')", True),
        ("from . import plyvel", False),  # a sibling module of that name is not the library
        ("# import plyvel\ns = 'import trio'", False),
        ("import plyvelx", False),
    ],
)
def test_the_import_scanner_itself(source: str, found: bool) -> None:
    names = _imports(source)
    assert bool(names & {"plyvel", "trio"}) is found
