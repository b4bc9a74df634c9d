"""setuptools hook for the compiled build: with ``LIBMESH_COMPILE=1`` the modules listed in pyproject.toml
``[tool.libmesh] compiled`` are compiled with mypyc into C extensions; otherwise (the default, and always
for editable installs in practice) libmesh is pure Python. See tools/mypyc_build.py and docs/design.md::

    LIBMESH_COMPILE=1 pip install --no-build-isolation .
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ext_modules = []
if os.environ.get("LIBMESH_COMPILE") == "1":
    from mypyc.build import mypycify

    sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
    from mypyc_build import compiled_modules, module_paths, stage_package

    stage = Path("build", "mypyc-stage")
    stage_package(stage)
    ext_modules = mypycify(module_paths(stage, compiled_modules()), opt_level="3")

setup(ext_modules=ext_modules)
