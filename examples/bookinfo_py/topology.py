"""Where the Bookinfo services listen, and the platform YAML that says so.

In Istio, Kubernetes tells the mesh where each pod is; here two kinds of files play that part, both written
into the configuration directory every service watches:

* ``mesh.yaml``: libmesh's MeshConfig (``end-user`` travels with every request; every trace is sampled,
  as this is a demo);
* ``services.yaml``: one ServiceEntry per service (the logical ``<name>:9080`` every caller uses, as in
  Istio's Bookinfo) and one WorkloadEntry per process, with its real loopback port and ``version`` label.

``mesh/services.yaml`` in this folder is what :func:`services_yaml` renders for the default :class:`Ports`;
a test keeps the two the same. Tests and a demo running beside another pick other ports and render their own.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HERE",
    "MESH_DIR",
    "NETWORKING",
    "SERVICE_PORT",
    "Ports",
    "Workload",
    "mesh_yaml",
    "services_yaml",
]

HERE = Path(__file__).resolve().parent
#: Scenario files, as Istio's samples/bookinfo/networking.
NETWORKING = HERE / "networking"
#: The platform files for the default ports.
MESH_DIR = HERE / "mesh"
#: The port every caller names, as Bookinfo's Kubernetes services do (``http://reviews:9080``).
SERVICE_PORT = 9080
NAMESPACE = "default"


@dataclass(frozen=True)
class Ports:
    """The loopback port of each process. Override the defaults with ``BOOKINFO_PORTS``
    (``productpage=19080,details=19081``) or with :meth:`free` (tests)."""

    productpage: int = 9080
    details: int = 9081
    reviews_v1: int = 9082
    reviews_v2: int = 9083
    reviews_v3: int = 9084
    #: gRPC.
    ratings: int = 9085
    #: The ratings process's small HTTP server: ``/metrics`` and the status endpoint.
    ratings_http: int = 9086

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Ports:
        """The defaults, with what ``BOOKINFO_PORTS`` overrides (``name=port`` pairs, comma-separated)."""
        text = (os.environ if environ is None else environ).get("BOOKINFO_PORTS", "")
        values: dict[str, int] = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for pair in filter(None, (p.strip() for p in text.split(","))):
            name, sep, port = pair.partition("=")
            if not sep or name not in names or not port.isdigit():
                raise ValueError(f"BOOKINFO_PORTS: {pair!r} is not one of {sorted(names)}=PORT")
            values[name] = int(port)
        return cls(**values)

    @classmethod
    def free(cls) -> Ports:
        """Ports nothing listens on right now (so a test can run beside a running demo)."""
        socks = []
        try:
            for _ in dataclasses.fields(cls):
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                socks.append(s)
            return cls(*(s.getsockname()[1] for s in socks))
        finally:
            for s in socks:
                s.close()

    def env(self) -> str:
        """This object as a ``BOOKINFO_PORTS`` value."""
        return ",".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))


@dataclass(frozen=True)
class Workload:
    """One process of the example: its service, version, and the port it serves on."""

    app: str
    version: str
    port: int
    protocol: str = "HTTP"

    @property
    def name(self) -> str:
        return f"{self.app}-{self.version}"


def workloads(ports: Ports) -> list[Workload]:
    """Every process of the example, in start order (callees first)."""
    return [
        Workload("ratings", "v1", ports.ratings, "GRPC"),
        Workload("details", "v1", ports.details),
        Workload("reviews", "v1", ports.reviews_v1),
        Workload("reviews", "v2", ports.reviews_v2),
        Workload("reviews", "v3", ports.reviews_v3),
        Workload("productpage", "v1", ports.productpage),
    ]


def mesh_yaml() -> str:
    """libmesh's MeshConfig for the example."""
    return """\
# libmesh's mesh-wide settings for the Bookinfo example.
apiVersion: libmesh.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  # The logged-in user travels with every call made while serving a request, so reviews can be routed on it
  # two hops away without the app copying the header.
  propagateHeaders: [end-user]
  telemetry:
    tracing: {sampling: 100}
"""


def services_yaml(ports: Ports, *, with_endpoints: bool = True) -> str:
    """ServiceEntries for the four services and, ``with_endpoints``, a WorkloadEntry per process. Without
    endpoints (running on Consul) the entries only declare ports and protocols; Consul has the instances."""
    out = [
        "# Where the Bookinfo services are: what Kubernetes Services and pods tell Istio.",
        f"# Rendered by examples/bookinfo_py/topology.py for {ports.env()}.",
    ]
    apps: dict[str, str] = {}
    for w in workloads(ports):
        apps.setdefault(w.app, w.protocol)
    for app, protocol in apps.items():
        port_name = protocol.lower()
        out += [
            "---",
            "apiVersion: networking.istio.io/v1",
            "kind: ServiceEntry",
            f"metadata: {{name: {app}}}",
            "spec:",
            f"  hosts: [{app}.{NAMESPACE}.svc.cluster.local]",
            "  location: MESH_INTERNAL",
            f"  ports: [{{number: {SERVICE_PORT}, name: {port_name}, protocol: {protocol}}}]",
            "  resolution: STATIC",
            f"  workloadSelector: {{labels: {{app: {app}}}}}",
        ]
    if with_endpoints:
        for w in workloads(ports):
            out += [
                "---",
                "apiVersion: networking.istio.io/v1",
                "kind: WorkloadEntry",
                f"metadata: {{name: {w.name}}}",
                "spec:",
                "  address: 127.0.0.1",
                f"  ports: {{{w.protocol.lower()}: {w.port}}}",
                f"  labels: {{app: {w.app}, version: {w.version}}}",
            ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # regenerate mesh/: python -m examples.bookinfo_py.topology
    MESH_DIR.mkdir(exist_ok=True)
    (MESH_DIR / "mesh.yaml").write_text(mesh_yaml())
    (MESH_DIR / "services.yaml").write_text(services_yaml(Ports()))
