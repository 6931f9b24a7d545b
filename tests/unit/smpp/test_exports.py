"""The public surface of iwork_mc.smpp is exactly its __all__, and the package stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import iwork_mc.smpp

PACKAGE = Path(iwork_mc.smpp.__file__).parent
FORBIDDEN = {"asyncio", "socket", "threading", "selectors"}


def test_all_lists_every_public_name() -> None:
    """Every public attribute of the package is in __all__, and every __all__ name exists."""
    public = {
        name for name in dir(iwork_mc.smpp) if not name.startswith("_") and name != "annotations"
    }

    assert public == set(iwork_mc.smpp.__all__)


def test_classes_show_the_public_module() -> None:
    """Public classes report iwork_mc.smpp as their module, not a private one."""
    modules = {
        name: value.__module__
        for name in iwork_mc.smpp.__all__
        if isinstance(value := getattr(iwork_mc.smpp, name), type)
    }

    assert {name: "iwork_mc.smpp" for name in modules} == modules


def _imports(path: Path) -> set[str]:
    """Absolute module names a source file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_smpp_imports_no_io_and_nothing_else_from_iwork_mc() -> None:
    """No module of smpp/ imports asyncio, socket, threading, selectors, or iwork_mc outside smpp."""
    offenders = {
        f"{path.name}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
        or (name.split(".")[0] == "iwork_mc" and not name.startswith("iwork_mc.smpp"))
    }

    assert set() == offenders


def test_purity_check_sees_the_package() -> None:
    """The purity check walks real files that import each other (so an empty walk cannot pass)."""
    assert "iwork_mc.smpp._pdu" in _imports(PACKAGE / "_wire.py")
