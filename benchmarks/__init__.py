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
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

__all__ = ["Result", "per_call", "per_run", "percentile", "summarise"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Result:
    """One measured benchmark. Times are seconds per operation; ``batch`` operations were timed per sample.

    ``bar`` is the acceptance limit for the median and ``goal`` the target (``None`` when there is none);
    ``baseline`` names the :attr:`name` of another result this one is read against, as a ratio.
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

    @property
    def status(self) -> str:
        """``"MISS"`` when the median is over the bar, ``"goal"`` when it meets the goal, ``"ok"`` otherwise,
        and ``""`` for a row without a bar."""
        if self.bar is None:
            return ""
        if self.median > self.bar:
            return "MISS"
        if self.goal is not None and self.median <= self.goal:
            return "goal"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        """The row as plain data (for ``--json``), with its status."""
        return {**asdict(self), "status": self.status}


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile ``pct`` (0-100) of ``values``: a value that was actually observed."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarise(samples: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile (nearest rank) of ``samples``."""
    return statistics.median(samples), percentile(samples, 99)


def per_call(
    fn: Callable[[T], object],
    make: Callable[[], Sequence[T]],
    *,
    batches: int,
    warmup: int = 3,
) -> tuple[float, float, list[float]]:
    """Time ``fn`` on every argument of fresh batches from ``make``; return (median, p99, samples) in seconds
    per call.

    Batches are built outside the timed region, so objects that cache lazily (such as a ``Call`` parsing its
    authority) are paid for on first use as a real request would, but building them is not timed.
    """
    for _ in range(warmup):
        for arg in make():
            fn(arg)
    samples: list[float] = []
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(batches):
            batch = make()
            gc.disable()
            start = clock()
            for arg in batch:
                fn(arg)
            elapsed = clock() - start
            if gc_was_enabled:
                gc.enable()
            samples.append(elapsed / 1e9 / max(1, len(batch)))
    finally:
        if gc_was_enabled:
            gc.enable()
    median, p99 = summarise(samples)
    return median, p99, samples


def per_run(fn: Callable[[], object], *, runs: int, warmup: int = 1) -> tuple[float, float, list[float]]:
    """Time ``runs`` whole calls of ``fn`` after ``warmup`` untimed ones; return (median, p99, samples) in
    seconds. With few runs the p99 is simply the slowest one.

    The collector stays on (a big compile's garbage is part of its cost) but starts each run from clean.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    median, p99 = summarise(samples)
    return median, p99, samples
