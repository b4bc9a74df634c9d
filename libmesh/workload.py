"""The local workload: who this process is in the mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Workload"]


@dataclass(frozen=True, slots=True)
class Workload:
    """The identity of the process libmesh runs in, as Istio knows a pod.

    ``labels`` are what ``sourceLabels`` matches and DestinationRule ``workloadSelector`` selects;
    ``namespace`` is what ``sourceNamespace`` matches and where short host names resolve::

        Workload(name="productpage-v1", namespace="default", labels={"app": "productpage", "version": "v1"},
                 service_account="bookinfo-productpage")
    """

    name: str = "unknown"
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str | None = None

    @property
    def app(self) -> str:
        """The ``app`` label (Istio's canonical service), or the workload name."""
        return self.labels.get("app") or self.labels.get("app.kubernetes.io/name") or self.name

    @property
    def version(self) -> str:
        """The ``version`` label, or ``"unknown"`` as Istio reports it."""
        return self.labels.get("version") or self.labels.get("app.kubernetes.io/version") or "unknown"
