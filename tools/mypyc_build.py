"""Compile libmesh's hot-path modules with mypyc: the compiled build (see docs/design.md, "Compiled build").

The modules are listed once, in ``pyproject.toml`` under ``[tool.libmesh] compiled``. Two things use them:

* ``setup.py``, when ``LIBMESH_COMPILE=1``, to build a wheel (or a non-editable install) whose listed
  modules are C extensions: ``LIBMESH_COMPILE=1 pip install --no-build-isolation .`` (mypy must be
  installed: it brings mypyc);
* this script, which builds a whole compiled copy of the working tree, tests and benchmarks included, so
  ``make test`` runs the suite against the compiled modules and ``make bench`` measures them::

      python tools/mypyc_build.py build/compiled

An editable install stays pure Python: an extension module next to its ``.py`` file would shadow every edit
made to it, so compiled modules never land in the source tree.

Both stage ``adapters/`` inside ``libmesh/`` (the installed layout) first: mypyc names a module after the
directories above its file, and must see ``libmesh.adapters.httpx``, not ``adapters.httpx``.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What a compiled tree leaves out of the working tree: its own outputs and caches.
_SKIP = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.so",
    "*.pyc",
    ".*_cache",
    ".artifacts",
)


def compiled_modules(root: Path = ROOT) -> list[str]:
    """The dotted names of the modules the compiled build compiles."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    return list(config["tool"]["libmesh"]["compiled"])


def stage_package(dest: Path, root: Path = ROOT) -> None:
    """Copy ``libmesh/`` to ``dest/libmesh`` with ``adapters/`` inside it as ``libmesh/adapters``."""
    ignore = shutil.ignore_patterns(*_SKIP)
    shutil.copytree(root / "libmesh", dest / "libmesh", ignore=ignore, dirs_exist_ok=True)
    shutil.copytree(root / "adapters", dest / "libmesh" / "adapters", ignore=ignore, dirs_exist_ok=True)


def module_paths(base: Path, modules: Sequence[str]) -> list[str]:
    """The source files of ``modules`` in a staged tree at ``base``."""
    paths = []
    for name in modules:
        path = base.joinpath(*name.split(".")).with_suffix(".py")
        if not path.is_file():
            raise SystemExit(f"pyproject.toml [tool.libmesh] compiled: no module {name} ({path})")
        paths.append(str(path))
    return paths


def mypy_ini(root: Path = ROOT) -> str:
    """pyproject.toml's ``[tool.mypy]`` settings as a ``mypy.ini``, for a staging directory without it."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]

    def lines(settings: dict[str, object]) -> list[str]:
        out = []
        for key, value in settings.items():
            if key in ("files", "module", "overrides"):
                continue
            text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            out.append(f"{key} = {text}")
        return out

    sections = ["[mypy]", *lines(config)]
    for override in config.get("overrides", []):
        modules = override["module"]
        for module in [modules] if isinstance(modules, str) else modules:
            sections += [f"[mypy-{module}]", *lines(override)]
    return "\n".join(sections) + "\n"


def compile_staged(stage: Path, modules: Sequence[str], root: Path = ROOT) -> list[Path]:
    """Compile ``modules`` of a staged package in place; returns the extension files made (relative to
    ``stage``), the shared runtime library included. The stage has no pyproject.toml: setuptools would
    read its ``package-dir`` and put ``libmesh.adapters`` extensions in ``adapters/``."""
    (stage / "mypy.ini").write_text(mypy_ini(root))
    paths = [str(Path(p).relative_to(stage)) for p in module_paths(stage, modules)]
    subprocess.run([sys.executable, "-m", "mypyc", *paths], cwd=stage, check=True, stdout=subprocess.DEVNULL)
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    made = (p.relative_to(stage) for p in stage.rglob("*") if p.name.endswith(suffixes))
    return [p for p in made if p.parts[0] != "build"]  # mypyc's own build directory


def build_tree(dest: Path, root: Path = ROOT) -> None:
    """Make ``dest`` a copy of the working tree whose listed modules are compiled."""
    dest = dest.resolve()
    stage = dest.with_name(dest.name + "-stage")
    for directory in (dest, stage):
        if directory.exists():
            shutil.rmtree(directory)
    skip = shutil.ignore_patterns(*_SKIP)

    def ignore(directory: str, names: list[str]) -> set[str]:
        # adapters/ is staged inside libmesh/ below; everything else is copied as it is.
        top = {"adapters"} if Path(directory) == root else set()
        return set(skip(directory, names)) | top

    shutil.copytree(root, dest, ignore=ignore)
    stage_package(dest, root)
    stage_package(stage, root)
    # The tests find ../shared beside the project root: give the copy the same neighbour.
    shared = root.parent / "shared"
    if shared.exists() and not (dest.parent / "shared").exists():
        (dest.parent / "shared").symlink_to(shared)
    modules = compiled_modules(root)
    started = time.monotonic()
    for made in compile_staged(stage, modules, root):
        target = dest / made
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(stage / made, target)
    print(f"compiled {len(modules)} modules into {dest} in {time.monotonic() - started:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Build a compiled copy of the working tree."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dest", type=Path, help="where the compiled tree goes (replaced)")
    args = parser.parse_args(argv)
    build_tree(args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
