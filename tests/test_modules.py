"""Tests of the package's module boundaries: every ftutils module can be star-imported, and its
``__all__`` names only what the module defines or re-exports (no stale names left by a move)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import ftutils

MODULES = sorted(info.name for info in pkgutil.iter_modules(ftutils.__path__) if not info.ispkg)


def test_the_package_lists_its_modules() -> None:
    assert {"checks", "evaluation", "models", "baselines", "plotting", "recipes"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_star_import_works(name: str) -> None:
    namespace: dict = {}
    exec(f"from ftutils.{name} import *", namespace)  # noqa: S102 - the statement under test
    module = importlib.import_module(f"ftutils.{name}")
    exported = getattr(module, "__all__", None)
    if exported is not None:
        assert len(exported) == len(set(exported)), f"ftutils.{name}.__all__ lists a name twice"
        assert set(exported) <= set(namespace), sorted(set(exported) - set(namespace))


@pytest.mark.parametrize("name", MODULES)
def test_checks_live_in_checks(name: str) -> None:
    """Exercise auto-checks are in ftutils.checks only (book.check_* validate the book, not a reader)."""
    if name in ("checks", "book"):
        return
    module = importlib.import_module(f"ftutils.{name}")
    strays = [n for n in vars(module) if n.startswith("check_") and callable(getattr(module, n))
              and getattr(getattr(module, n), "__module__", None) == module.__name__]
    assert not strays, f"ftutils.{name} defines exercise checks {strays}: put them in ftutils.checks"
