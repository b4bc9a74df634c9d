"""Shared fixtures: the Istio corpus beside the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "istio-corpus"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The Istio corpus directory; tests that need it skip with a reason where it is absent."""
    if not CORPUS.is_dir():
        pytest.skip(f"Istio corpus not found at {CORPUS} (CI always has it; a user's clone may not)")
    return CORPUS
