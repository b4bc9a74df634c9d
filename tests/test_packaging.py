"""The distribution ships every package, including adapters/ as ``libmesh.adapters``."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "libmesh").rglob("__init__.py")} | {
        "libmesh.adapters"
    }
    assert found == listed
    assert config["package-dir"]["libmesh.adapters"] == "adapters"


def test_adapters_import_as_libmesh_adapters() -> None:
    import libmesh.adapters.asgi
    import libmesh.adapters.httpx
    import libmesh.adapters.wsgi

    assert libmesh.adapters.httpx.MeshTransport.__module__ == "libmesh.adapters.httpx"
    assert libmesh.adapters.asgi.MeshMiddleware and libmesh.adapters.wsgi.MeshMiddleware
