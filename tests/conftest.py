"""Shared fixtures: the Istio corpus beside the project root; whether a module is compiled."""

from __future__ import annotations

import importlib.machinery
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "istio-corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The Istio corpus directory; tests that need it skip with a reason where it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"Istio corpus not found at {CORPUS} (CI always has it; a user's clone may not)")
    return CORPUS


def compiled(module: ModuleType) -> bool:
    """Whether ``module`` is a C extension from the compiled build (``make unit-compiled``): doctest and
    monkeypatching cannot see inside one."""
    name = getattr(module, "__file__", None) or ""
    return name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
