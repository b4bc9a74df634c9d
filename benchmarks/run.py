"""Run every benchmark and print one table: ``python -m benchmarks.run`` (``make bench``).

Options::

    --quick          fewer samples: a smoke test that the benchmarks work, not a measurement
    --only NAME      run only the benchmark modules whose name contains NAME (repeatable)
    --json FILE      also write the machine description and every row as JSON
    --markdown       print the table as Markdown (what docs/performance.md shows)
    --check          exit with status 1 when a median misses its bar

Each benchmark module exposes ``run(quick: bool) -> list[Result]`` (see :mod:`benchmarks`). A module that is
absent, or whose code under test does not import yet, is reported and skipped rather than failing the run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import Result

__all__ = ["MODULES", "machine", "main", "render"]

#: Benchmark modules, in the order their rows are printed.
MODULES: tuple[str, ...] = (
    "route_bench",
    "regex_bench",
    "telemetry_bench",
    "http_overhead",
    "http_bench",
    "grpc_bench",
    "grpc_floor",
)


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, Python, OS and the load average at the start."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{platform.system()} {platform.release()}",
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "Model name" in fields:
        info["cpu"] = fields["Model name"]
        if "CPU family" in fields and "Model" in fields:  # a VM often shows only "AMD EPYC"
            info["cpu"] += f" (family {fields['CPU family']}, model {fields['Model']})"
    sockets = fields.get("Socket(s)", "1")
    per_socket = fields.get("Core(s) per socket")
    if per_socket and per_socket.isdigit() and sockets.isdigit():
        info["cores"] = int(per_socket) * int(sockets)
    if "Hypervisor vendor" in fields:
        info["hypervisor"] = fields["Hypervisor vendor"]
    if hasattr(os, "getloadavg"):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    info["build"] = build()
    return info


def build() -> str:
    """Which libmesh is measured: ``compiled (mypyc, N modules)`` or ``pure Python``."""
    import importlib.machinery

    import libmesh

    root = Path(libmesh.__file__).parent
    compiled = [
        p for p in root.rglob("*") if any(p.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    ]
    return f"compiled (mypyc, {len(compiled)} modules)" if compiled else "pure Python"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _ratio(result: Result, by_name: dict[str, Result]) -> str:
    # CPU medians when both rows have them: they do not move when a neighbour takes the CPU.
    base = by_name.get(result.baseline or "")
    if base is None:
        return ""
    if result.median_cpu is not None and base.median_cpu is not None:
        mine, theirs = result.median_cpu, base.median_cpu
    else:
        mine, theirs = result.median, base.median
    if theirs <= 0:
        return ""
    ratio = mine / theirs
    return f"{ratio:.1f}x" if ratio >= 0.95 else f"{ratio:.2f}x"


def render(results: Sequence[Result], *, markdown: bool = False) -> str:
    """The results as an aligned text table (or a Markdown table)."""
    by_name = {r.name: r for r in results}
    head = [
        "benchmark",
        "what",
        "median",
        "p99",
        "cpu median",
        "cpu p99",
        "bar",
        "goal",
        "vs baseline",
        "status",
    ]
    rows = [
        [
            r.name,
            r.label + (f" ({r.note})" if r.note else ""),
            _fmt_time(r.median),
            _fmt_time(r.p99),
            _fmt_time(r.median_cpu),
            _fmt_time(r.p99_cpu),
            _fmt_bar(r, r.bar),
            _fmt_bar(r, r.goal),
            _ratio(r, by_name) + (f" ({r.baseline})" if r.baseline and _ratio(r, by_name) else ""),
            r.status,
        ]
        for r in results
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += [_md_row(row) for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    numeric = {2, 3, 4, 5, 6, 7}

    def line(cells: Iterable[str]) -> str:
        parts = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(head), line("-" * w for w in widths), *(line(row) for row in rows)])


def _fmt_bar(r: Result, limit: float | None) -> str:
    # A bar on a ratio (mesh against bare) reads as one; any other bar is a time.
    if limit is not None and r.ratio is not None:
        return f"{limit:.2f}x"
    return _fmt_time(limit)


def _md_row(row: list[str]) -> str:
    cells = [f"`{row[0]}`", *row[1:]]
    return "| " + " | ".join(cells) + " |"


def _coerce(rows: Iterable[Any]) -> list[Result]:
    # Duck-typed on purpose: a module may return plain dicts, or Result objects from a second copy of this
    # package (``python -m benchmarks.route_bench`` imports it under two names).
    out: list[Result] = []
    for row in rows:
        if isinstance(row, Result):
            out.append(row)
        elif isinstance(row, dict):
            out.append(Result(**{k: v for k, v in row.items() if k != "status"}))
        else:
            fields = Result.__dataclass_fields__
            out.append(Result(**{k: getattr(row, k) for k in fields if hasattr(row, k)}))
    return out


def collect(only: Sequence[str] = (), quick: bool = False) -> tuple[list[Result], list[str]]:
    """Run the benchmark modules (those whose name contains one of ``only``, or all); return their results
    and a note per module: how long it took, or why it was skipped."""
    results: list[Result] = []
    notes: list[str] = []
    for name in MODULES:
        if only and not any(o in name for o in only):
            continue
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            notes.append(f"{name}: skipped ({e})")
            continue
        start = time.perf_counter()
        results.extend(_coerce(module.run(quick=quick)))
        notes.append(f"{name}: {time.perf_counter() - start:.1f} s")
    return results, notes


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="modules to run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--check", action="store_true", help="exit 1 when a median misses its bar")
    args = parser.parse_args(argv)

    info = machine()
    print(
        f"machine: {info['cpu']}, {info.get('cores', info['cpus'])} cores ({info['cpus']} CPUs)"
        f"{', ' + info['hypervisor'] + ' VM' if 'hypervisor' in info else ''}; {info['python']}; {info['os']}"
        + (f"; load {info['loadavg']}" if "loadavg" in info else "")
    )
    print(f"libmesh: {info['build']}")
    results, notes = collect(args.only, args.quick)
    print(render(results, markdown=args.markdown))
    print("; ".join(notes) + (" (--quick: smoke test, not a measurement)" if args.quick else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {"machine": info, "quick": args.quick, "results": [r.as_dict() for r in results]}, f, indent=2
            )
    missed = [r.name for r in results if r.status == "MISS"]
    if missed:
        print(f"missed bars: {', '.join(missed)}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
