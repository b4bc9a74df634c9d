r"""Benchmarks for full-match regexes (:mod:`libmesh.routing.regex`): each engine on representative patterns.

``python -m benchmarks.regex_bench`` prints, for each pattern, nanoseconds per call of:

* ``chosen``      the :class:`~libmesh.routing.regex.FullMatcher` that ``compile_full_match`` picks;
* ``python re``   ``re.compile(p).fullmatch(v)``: the same text on Python's engine, for timing only (its meaning
  can differ, e.g. Python's ``\d`` is Unicode);
* ``re2 native``  RE2's compiled object underneath the google-re2 wrapper, as the ``re2`` engine calls it;
* ``re2 set``     the same through an anchored ``re2.Set`` of one pattern (faster, but see the note printed);
* ``wrap full``   the public wrapper ``re2.compile(p).fullmatch(v)``;
* ``wrap bytes``  the same with the value encoded to UTF-8 first (skips the wrapper's offset translation);
* ``wrap \z``      ``re2.compile("(?:p)\\z").match(v)``.

Each cell is the median of several timed loops (``time.perf_counter_ns``), the loop's own cost included. Then
it shows backtracking blowing up on Python's ``re`` for the pathological patterns that go to RE2.

``python -m benchmarks.run`` takes the rows of :func:`run`: the chosen engine per pattern, each read against
the google-re2 wrapper on the same pattern and value.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import re2
from re2 import _re2

from libmesh.routing import regex as rx

from . import Result, per_call

__all__ = ["CASES", "Case", "main", "run"]


@dataclass(frozen=True, slots=True)
class Case:
    """A representative pattern, a value it matches and one it does not."""

    name: str
    pattern: str
    hit: str
    miss: str


CASES: tuple[Case, ...] = (
    Case("exact", r"/api/v1/health", "/api/v1/health", "/api/v1/healthz"),
    Case("methods", r"GET|HEAD|OPTIONS", "HEAD", "POST"),
    Case("prefix", r"/api/.*", "/api/v1/users/alice/orders", "/static/app.js"),
    Case("suffix", r".*\.(?:css|js)", "/static/app/main.js", "/static/app/main.ts"),
    Case(
        "glob",
        r"spiffe://.*/ns/.*/sa/.*",
        "spiffe://cluster.local/ns/shop/sa/web",
        "spiffe://cluster.local/x",
    ),
    Case("host-ci", r"(?i).*\.example\.com", "Shop.EXAMPLE.com", "shop.example.org"),
    Case(
        "path-param", r"/api/v[0-9]+/users/[^/]+/orders", "/api/v2/users/alice/orders", "/api/v2/users/alice"
    ),
    Case("version-hdr", r"v\d+\.\d+(-[a-z]+)?", "v1.42-beta", "v1.42-"),
    Case("cookie", r"^(.*?;)?(user=dev-123)(;.*)?", "lang=en;user=dev-123;theme=dark", "lang=en;theme=dark"),
    Case("long-prefix", r"/files/.*", "/files/" + "x" * 2000, "/filez/" + "x" * 2000),
    Case("long-param", r"/files/[^/]+/[a-z0-9]+", "/files/" + "x" * 2000 + "/abc", "/files/" + "x" * 2000),
)

#: Patterns a backtracking engine explodes on, a non-matching input of size n, and the sizes to try on
#: Python's ``re`` (normal run, then --quick); ``compile_full_match`` sends each pattern to RE2.
PATHOLOGICAL: tuple[tuple[str, Callable[[int], str], tuple[int, ...], tuple[int, ...]], ...] = (
    (r"(a+)+$", lambda n: "a" * n + "b", (16, 18, 20, 22), (14, 16)),
    (r"(a|aa)*b", lambda n: "a" * n + "c", (22, 25, 28, 31), (18, 22)),
    (r"(.*a){20}", lambda n: "a" * n + "b", (22, 24, 26), (21, 22)),
)


def _native_re2(pattern: str) -> Callable[[str], bool]:
    return rx._Re2(pattern, "benchmark")


def _set_re2(pattern: str) -> Callable[[str], bool]:
    options = re2.Options()
    options.log_errors = False
    options.never_capture = True
    anchored = _re2.Set(_re2.RE2.Anchor.ANCHOR_BOTH, options)
    anchored.Add(pattern.encode())
    anchored.Compile()
    match = anchored.Match
    return lambda v: bool(match(v.encode()))


def _engines(case: Case) -> dict[str, Callable[[str], object]]:
    wrapped = re2.compile(case.pattern)
    wrapped_z = re2.compile(f"(?:{case.pattern})\\z")
    return {
        "chosen": rx.compile_full_match(case.pattern),
        "python re": re.compile(case.pattern).fullmatch,
        "re2 native": _native_re2(case.pattern),
        "re2 set": _set_re2(case.pattern),
        "wrap full": wrapped.fullmatch,
        "wrap bytes": lambda v: wrapped.fullmatch(v.encode()),
        "wrap \\z": wrapped_z.match,
    }


def ns_per_call(
    fn: Callable[[str], object], value: str, *, repeats: int = 7, target_ns: int = 20_000_000
) -> float:
    """Median nanoseconds per ``fn(value)`` over ``repeats`` loops sized to take about ``target_ns`` each."""
    clock = time.perf_counter_ns
    loops = 1
    while True:
        start = clock()
        for _ in range(loops):
            fn(value)
        elapsed = clock() - start
        if elapsed >= target_ns // 10 or loops >= 1 << 22:
            break
        loops *= 4
    loops = max(1, round(loops * target_ns / max(elapsed, 1)))
    samples = []
    for _ in range(repeats):
        start = clock()
        for _ in range(loops):
            fn(value)
        samples.append((clock() - start) / loops)
    return statistics.median(samples)


def _check_case(case: Case) -> None:
    # A benchmark of a matcher that answers wrongly measures nothing: fail loudly instead.
    chosen = rx.compile_full_match(case.pattern)
    if not chosen(case.hit) or chosen(case.miss):
        raise AssertionError(f"benchmark setup is wrong: {case.pattern!r} on {case.hit!r} / {case.miss!r}")


def table(cases: Sequence[Case] = CASES, *, quick: bool = False) -> str:
    """The ns/call table for ``cases``: one line per pattern and value, one column per engine."""
    repeats, target = (3, 2_000_000) if quick else (7, 20_000_000)
    columns = list(_engines(cases[0]))
    head = ["case", "value", "engine", *columns]
    rows = []
    for case in cases:
        _check_case(case)
        engines = _engines(case)
        for which, value in (("hit", case.hit), ("miss", case.miss)):
            cells = [case.name, which, str(rx.compile_full_match(case.pattern).engine)]
            for name in columns:
                cells.append(f"{ns_per_call(engines[name], value, repeats=repeats, target_ns=target):.0f}")
            rows.append(cells)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(
            c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [head, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pathological(*, quick: bool = False) -> str:
    """Python's ``re`` against RE2 (as chosen) on the pathological patterns, as input grows."""
    lines = []
    for pattern, make, normal, short in PATHOLOGICAL:
        sizes = short if quick else normal
        chosen = rx.compile_full_match(pattern)
        python = re.compile(pattern).fullmatch
        cells = []
        for n in sizes:
            start = time.perf_counter_ns()
            python(make(n))
            cells.append(f"n={n}: {(time.perf_counter_ns() - start) / 1e6:.2f} ms")
        big = make(100_000)
        start = time.perf_counter_ns()
        answer = chosen(big)
        took = (time.perf_counter_ns() - start) / 1e6
        lines.append(
            f"{pattern:12} python re: {', '.join(cells)}  |  chosen ({chosen.engine}) n=100000: {took:.2f} ms"
            f" -> {answer}"
        )
    return "\n".join(lines)


def run(quick: bool = False) -> list[Result]:
    """Rows for ``python -m benchmarks.run``: the chosen engine per pattern (on the matching value), each
    against the google-re2 wrapper's ``fullmatch`` on the same pattern and value."""
    batches, batch = (30, 200) if quick else (200, 500)
    results: list[Result] = []
    for case in CASES:
        _check_case(case)
        chosen = rx.compile_full_match(case.pattern)
        wrapped = re2.compile(case.pattern).fullmatch
        base = f"regex.{case.name}.re2wrap"

        def values(v: str = case.hit) -> list[str]:
            return [v] * batch

        for name, label, fn, baseline in (
            (f"regex.{case.name}", f"regex {case.pattern[:40]} ({chosen.engine})", chosen, base),
            (base, "baseline: google-re2 wrapper fullmatch", wrapped, None),
        ):
            median, p99, samples = per_call(fn, values, batches=batches)
            results.append(Result(name, label, median, p99, len(samples), batch, baseline=baseline))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ns/call table and the pathological comparison; ``--quick`` for a smoke test."""
    quick = "--quick" in (sys.argv[1:] if argv is None else argv)
    print("ns per call (median of timed loops, loop overhead included)")
    print(table(quick=quick))
    print()
    print(
        "re2 set is faster than re2 native, but RE2::Set::Match answers 'no match' when its DFA runs out of"
        " memory instead of falling back as RE2::Match does, and this binding cannot tell the two apart."
    )
    print()
    print("pathological patterns (each routed to RE2 by compile_full_match):")
    print(pathological(quick=quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
