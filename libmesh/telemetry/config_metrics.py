"""Prometheus metrics that acknowledge config changes: which version serves, when it landed, how reloads went.

- ``libmesh_config_info{version="3f2a9c0d41be",source="files: mesh/"} 1``: the version serving now.
- ``libmesh_config_last_applied_timestamp_seconds``: when it was applied (Unix time).
- ``libmesh_config_reloads_total{result="applied"|"rejected"}``: reloads that swapped a config in, and
  reloads that rejected a unit (file or KV key) whose last good version kept serving.

Registered next to Istio's metrics on the mesh's registry, so one scrape of ``/metrics`` tells a fleet's
operator which version every workload runs (``count by (version) (libmesh_config_info)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..reload import ReloadState

__all__ = ["register_config_metrics"]


class _ConfigCollector(Collector):
    def __init__(self, state: Callable[[], ReloadState]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        info = GaugeMetricFamily(
            "libmesh_config_info", "The config version serving now (value 1).", labels=["version", "source"]
        )
        info.add_metric([state.version, state.source], 1.0)
        yield info
        applied = GaugeMetricFamily(
            "libmesh_config_last_applied_timestamp_seconds",
            "When the serving config was applied (Unix time).",
        )
        if state.last_applied is not None:
            applied.add_metric([], state.last_applied)
        yield applied
        reloads = CounterMetricFamily(
            "libmesh_config_reloads", "Config reloads by result.", labels=["result"]
        )
        reloads.add_metric(["applied"], float(state.applied))
        reloads.add_metric(["rejected"], float(state.rejected))
        yield reloads


def register_config_metrics(registry: CollectorRegistry, state: Callable[[], ReloadState]) -> Collector:
    """Register the config metrics on ``registry``; ``state`` returns the mesh's current reload state."""
    collector = _ConfigCollector(state)
    registry.register(collector)
    return collector
