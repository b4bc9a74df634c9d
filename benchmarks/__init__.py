"""Micro-benchmarks for libmesh's hot paths; ``python -m benchmarks.run`` (or ``make bench``) runs them all.

Each benchmark module exposes ``run(quick: bool) -> list[Result]``. This package holds the shared measuring
kit so every benchmark reports the same way:

* :func:`per_call` times a function over *batches* of calls and turns each batch into one sample (the batch's
  time divided by its size), so the timer's own cost and resolution vanish; the median and the 99th percentile
  of those samples are what the table shows.
* :func:`per_run` times a whole operation (compiling a snapshot, loading YAML) once per sample.
* :class:`Result` is one row of the table: the numbers, the bar (must not exceed) and goal (aim for) from the
  issue, and the name of the baseline row it is read against.

The garbage collector is paused while a batch runs (as :mod:`timeit` does) so one unlucky collection does not
land in a single sample; what the code under test allocates is still paid for by later samples.

Every sample is taken on two clocks: the wall clock (what a caller waits) and the thread's CPU time (what the
code costs). They agree unless the process was descheduled mid-batch; on a shared machine that happens often
enough (a lost 4 ms scheduler slice) to dominate the wall-clock p99, so ``median_cpu`` and ``p99_cpu`` are
reported beside them.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

__all__ = [
    "Result",
    "Timing",
    "per_call",
    "per_run",
    "percentile",
    "summarise",
    "time_calls",
    "time_runs",
    "with_ratios",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Result:
    """One measured benchmark. Times are seconds per operation; ``batch`` operations were timed per sample.

    ``bar`` is the acceptance limit for the median and ``goal`` the target (``None`` when there is none);
    ``baseline`` names the :attr:`name` of another result this one is read against, as a ratio. When
    ``ratio`` is set (see :func:`with_ratios`), the bar and goal are limits for that ratio, not for the
    median.
    """

    name: str
    label: str
    median: float
    p99: float | None
    samples: int
    batch: int = 1
    bar: float | None = None
    goal: float | None = None
    baseline: str | None = None
    note: str = ""
    median_cpu: float | None = None
    p99_cpu: float | None = None
    ratio: float | None = None

    @property
    def status(self) -> str:
        """``"MISS"`` when the median is over the bar, ``"goal"`` when it meets the goal, ``"ok"`` otherwise,
        and ``""`` for a row without a bar."""
        if self.bar is None:
            return ""
        measured = self.median if self.ratio is None else self.ratio
        if measured > self.bar:
            return "MISS"
        if self.goal is not None and measured <= self.goal:
            return "goal"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        """The row as plain data (for ``--json``), with its status."""
        return {**asdict(self), "status": self.status}


def with_ratios(results: Sequence[Result]) -> list[Result]:
    """``results`` with :attr:`Result.ratio` set on every row that has a bar and a baseline among them:
    for modules whose bars are ratios to a bare twin measured in the same run (mesh against bare)."""
    by_name = {r.name: r for r in results}
    out = []
    for r in results:
        base = by_name.get(r.baseline) if r.baseline else None
        if r.bar is not None and base is not None and base.median > 0:
            r = replace(r, ratio=r.median / base.median)
        out.append(r)
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile ``pct`` (0-100) of ``values``: a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarise(samples: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile (nearest rank) of ``samples``."""
    return statistics.median(samples), percentile(samples, 99)


@dataclass(frozen=True, slots=True)
class Timing:
    """Samples in seconds per operation on the wall clock and on the thread's CPU clock, and their summaries."""

    samples: list[float]
    cpu_samples: list[float]

    @property
    def median(self) -> float:
        """Median wall-clock time."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """99th percentile of wall-clock time."""
        return percentile(self.samples, 99)

    @property
    def median_cpu(self) -> float:
        """Median CPU time."""
        return statistics.median(self.cpu_samples)

    @property
    def p99_cpu(self) -> float:
        """99th percentile of CPU time (immune to the process being descheduled)."""
        return percentile(self.cpu_samples, 99)

    def result(self, name: str, label: str, batch: int = 1, **extra: Any) -> Result:
        """A table row from these samples; ``extra`` sets ``bar``, ``goal``, ``baseline`` or ``note``."""
        return Result(
            name,
            label,
            self.median,
            self.p99,
            len(self.samples),
            batch,
            median_cpu=self.median_cpu,
            p99_cpu=self.p99_cpu,
            **extra,
        )


def time_calls(
    fn: Callable[[T], object],
    make: Callable[[], Sequence[T]],
    *,
    batches: int,
    warmup: int = 3,
) -> Timing:
    """Time ``fn`` on every argument of fresh batches from ``make``, one sample (seconds per call) per batch.

    Batches are built outside the timed region, so objects that cache lazily (such as a ``Call`` parsing its
    authority) are paid for on first use as a real request would, but building them is not timed.
    """
    for _ in range(warmup):
        for arg in make():
            fn(arg)
    wall: list[float] = []
    cpu: list[float] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(batches):
            batch = make()
            gc.disable()
            start, cpu_start = clock(), cpu_clock()
            for arg in batch:
                fn(arg)
            cpu_end, end = cpu_clock(), clock()
            if gc_was_enabled:
                gc.enable()
            n = max(1, len(batch)) * 1e9
            wall.append((end - start) / n)
            cpu.append((cpu_end - cpu_start) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timing(wall, cpu)


def time_runs(fn: Callable[[], object], *, runs: int, warmup: int = 1) -> Timing:
    """Time ``runs`` whole calls of ``fn`` after ``warmup`` untimed ones, one sample (seconds) per run.

    The collector stays on (a big compile's garbage is part of its cost) but each run starts from clean.
    """
    for _ in range(warmup):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        gc.collect()
        start, cpu_start = time.perf_counter(), time.thread_time()
        fn()
        cpu.append(time.thread_time() - cpu_start)
        wall.append(time.perf_counter() - start)
    return Timing(wall, cpu)


def per_call(
    fn: Callable[[T], object],
    make: Callable[[], Sequence[T]],
    *,
    batches: int,
    warmup: int = 3,
) -> tuple[float, float, list[float]]:
    """:func:`time_calls` on the wall clock only: (median, p99, samples) in seconds per call."""
    t = time_calls(fn, make, batches=batches, warmup=warmup)
    return t.median, t.p99, t.samples


def per_run(fn: Callable[[], object], *, runs: int, warmup: int = 1) -> tuple[float, float, list[float]]:
    """:func:`time_runs` on the wall clock only: (median, p99, samples) in seconds per run; with few runs
    the p99 is simply the slowest one."""
    t = time_runs(fn, runs=runs, warmup=warmup)
    return t.median, t.p99, t.samples
