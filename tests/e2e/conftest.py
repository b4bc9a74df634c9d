"""End-to-end fixtures: the Bookinfo example as real processes on free loopback ports (so the tests can run
beside a running ``make demo``), and the external programs some tests drive (Prometheus, Chromium).

A test that needs a program which is missing skips with the reason, except under CI (``CI=true``), where
it fails: ``make test`` installs them (Debian's ``prometheus`` and ``chromium``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.bookinfo_py.launcher import Bookinfo
from examples.bookinfo_py.topology import Ports

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots and other files a person may want to look at after a run.
ARTIFACTS = ROOT / ".artifacts" / "e2e"


def need_program(name: str, path: str | None = None) -> str:
    """The path of program ``name`` (or ``path``); skips the test when it is missing, fails under CI."""
    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (make test installs it with apt-get: Debian package {name!r})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; under CI this is a failure, not a skip")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bookinfo]:
    """The six processes, started once per test module, writing their spans to ``<run>/spans``."""
    run = tmp_path_factory.mktemp("bookinfo")
    app = Bookinfo(run, Ports.free(), spans_dir=run / "spans")
    with app:
        yield app


@pytest.fixture
def artifacts() -> Path:
    """``.artifacts/e2e/`` at the repository root (git-ignored), created."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
