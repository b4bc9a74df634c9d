"""Istio's standard request metrics, kept in process and exposed in Prometheus' text format.

The names, types, labels (in Istio's order) and histogram buckets are those an Istio sidecar exports, so
Istio's Grafana dashboards, Kiali and existing PromQL work unchanged::

    metrics = IstioMetrics()
    metrics.record(RequestRecord(Reporter.SOURCE, me, peer, destination_service="reviews.default.svc.cluster.local",
                                 destination_service_name="reviews", destination_service_namespace="default",
                                 response_code=200, duration_ms=3.2, request_bytes=120, response_bytes=4500))
    body, content_type = metrics.exposition()

Values follow Istio's rules: a missing label value is ``"unknown"``, except a peer's canonical revision
(``"latest"``) and ``grpc_response_status`` on plain HTTP (empty); ``connection_security_policy`` is
``"unknown"`` on the client side (Istio cannot tell there) and ``"mutual_tls"`` or ``"none"`` on the server.

Each series is created once, on its first request, and kept in plain Python counters behind one lock: a
repeat request costs a dict lookup and a few additions, and nothing is resolved by label until a scrape.
A scrape turns the counters into Prometheus families through a collector registered on the registry.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple
from urllib.parse import quote, unquote

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..workload import Workload

__all__ = [
    "BYTES_BUCKETS",
    "DURATION_BUCKETS_MS",
    "LABEL_NAMES",
    "PEER_HEADER",
    "UNKNOWN",
    "BoundSeries",
    "IstioMetrics",
    "Peer",
    "Reporter",
    "RequestRecord",
    "SecurityPolicy",
    "decode_peer",
    "encode_peer",
]

#: Istio's placeholder for a label whose value is not known.
UNKNOWN: Final = "unknown"

#: The labels of every standard HTTP/gRPC metric, in the order Istio's stats filter emits them.
LABEL_NAMES: Final[tuple[str, ...]] = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
)

#: Envoy's default histogram bounds, which Istio uses for ``istio_request_duration_milliseconds`` (unless a
#: pod sets ``sidecar.istio.io/statsHistogramBuckets``).
DURATION_BUCKETS_MS: Final[tuple[float, ...]] = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)

#: Istio configures no separate bounds for the size histograms, so Envoy's defaults apply to them too.
BYTES_BUCKETS: Final[tuple[float, ...]] = DURATION_BUCKETS_MS

_DURATION: Final = "istio_request_duration_milliseconds"
_REQUEST_BYTES: Final = "istio_request_bytes"
_RESPONSE_BYTES: Final = "istio_response_bytes"
_REQUESTS: Final = "istio_requests_total"
_REQUEST_MESSAGES: Final = "istio_request_messages_total"
_RESPONSE_MESSAGES: Final = "istio_response_messages_total"


class Reporter(StrEnum):
    """Which side recorded the call: the client (``source``) or the server (``destination``)."""

    SOURCE = "source"
    DESTINATION = "destination"


class SecurityPolicy(StrEnum):
    """``connection_security_policy``: how the connection was secured, as far as the reporter knows."""

    MUTUAL_TLS = "mutual_tls"
    NONE = "none"
    UNKNOWN = "unknown"


def _first(labels: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        value = labels.get(key)
        if value:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Peer:
    """One end of a call as Istio's metrics describe it. Every field defaults to what Istio reports when
    it knows nothing about the peer, so ``Peer()`` is the unknown peer.

    Build it from the local :class:`~libmesh.workload.Workload` with :meth:`from_workload`, or from an
    endpoint's labels with :meth:`from_labels`. Peers are hashed once at construction because every
    recorded call looks its series up by them.
    """

    workload: str = UNKNOWN
    namespace: str = UNKNOWN
    principal: str = UNKNOWN
    app: str = UNKNOWN
    version: str = UNKNOWN
    canonical_service: str = UNKNOWN
    canonical_revision: str = "latest"
    cluster: str = UNKNOWN
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(self.values()))

    def __hash__(self) -> int:
        return self._hash

    def values(self) -> tuple[str, str, str, str, str, str, str, str]:
        """The fields in declaration order (the order :func:`encode_peer` writes them)."""
        return (
            self.workload,
            self.namespace,
            self.principal,
            self.app,
            self.version,
            self.canonical_service,
            self.canonical_revision,
            self.cluster,
        )

    @classmethod
    def from_labels(
        cls,
        labels: Mapping[str, str],
        *,
        workload: str | None = None,
        namespace: str | None = None,
        principal: str | None = None,
        cluster: str | None = None,
    ) -> Peer:
        """A peer described by Kubernetes-style labels, with Istio's fallbacks.

        ``app``/``version`` come from ``app``/``version`` (then ``app.kubernetes.io/name``/``version``);
        the canonical service from ``service.istio.io/canonical-name``, ``app.kubernetes.io/name``, ``app``,
        then the workload name; the canonical revision from ``service.istio.io/canonical-revision``,
        ``app.kubernetes.io/version``, ``version``, then ``"latest"``.
        """
        name = workload or labels.get("service.istio.io/workload-name") or UNKNOWN
        return cls(
            workload=name,
            namespace=namespace or UNKNOWN,
            principal=principal or UNKNOWN,
            app=_first(labels, "app", "app.kubernetes.io/name") or UNKNOWN,
            version=_first(labels, "version", "app.kubernetes.io/version") or UNKNOWN,
            canonical_service=_first(
                labels, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app"
            )
            or name,
            canonical_revision=_first(
                labels, "service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"
            )
            or "latest",
            cluster=cluster or UNKNOWN,
        )

    @classmethod
    def from_workload(
        cls, workload: Workload, *, principal: str | None = None, cluster: str | None = None
    ) -> Peer:
        """The local workload as a peer. ``principal`` stays ``"unknown"`` unless given: Istio sets it only
        when the connection carries a verified identity (mutual TLS)."""
        return cls.from_labels(
            workload.labels,
            workload=workload.name,
            namespace=workload.namespace,
            principal=principal,
            cluster=cluster,
        )


_UNKNOWN_PEER: Final = Peer()

#: The request/response header carrying a peer's description (see :func:`encode_peer`).
PEER_HEADER: Final = "x-libmesh-peer"

_PEER_FIELDS: Final = (
    "workload",
    "namespace",
    "principal",
    "app",
    "version",
    "canonical_service",
    "canonical_revision",
    "cluster",
)
_PEER_KEYS: Final = ("w", "ns", "p", "app", "v", "cs", "cr", "c")
_PEER_KEY_TO_FIELD: Final = dict(zip(_PEER_KEYS, _PEER_FIELDS, strict=True))
_MAX_PEER_HEADER: Final = 2048
_MAX_PEER_VALUE: Final = 253


def encode_peer(peer: Peer) -> str:
    """The value of :data:`PEER_HEADER` describing ``peer``, so the other side can label its metrics.

    Istio's sidecars exchange this through ``x-envoy-peer-metadata``; libmesh sends a compact, readable
    form instead: ``w=productpage-v1,ns=default,app=productpage,v=v1,cs=productpage,cr=v1``, values
    percent-encoded, fields at their unknown default left out.
    """
    default = _UNKNOWN_PEER.values()
    parts = [
        f"{key}={quote(value, safe='')}"
        for key, value, unset in zip(_PEER_KEYS, peer.values(), default, strict=True)
        if value != unset
    ]
    return ",".join(parts)


def decode_peer(value: str | None) -> Peer | None:
    """The peer described by a :data:`PEER_HEADER` value, or ``None`` when there is none.

    The header comes from the network, so this never raises: unknown keys and malformed items are
    skipped, values are cut to 253 characters and an oversized header is ignored.
    """
    if not value or len(value) > _MAX_PEER_HEADER:
        return None
    cached = _PEER_CACHE.get(value)
    if cached is not None:
        return cached
    peer = _decode_peer(value)
    if peer is not None:
        # A mesh has few peers and each sends the same header on every call: parse each value once.
        if len(_PEER_CACHE) >= _PEER_CACHE_LIMIT:
            _PEER_CACHE.clear()
        _PEER_CACHE[value] = peer
    return peer


_PEER_CACHE: dict[str, Peer] = {}
_PEER_CACHE_LIMIT = 1024


def _decode_peer(value: str) -> Peer | None:
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, raw = item.strip().partition("=")
        name = _PEER_KEY_TO_FIELD.get(key)
        if not sep or name is None:
            continue
        text = unquote(raw)[:_MAX_PEER_VALUE]
        if text:
            fields[name] = text
    if not fields:
        return None
    return Peer(**fields)


class RequestRecord(NamedTuple):
    """The facts about one finished call that the standard metrics need; :meth:`IstioMetrics.record`
    counts it once. Immutable (a named tuple: it is built on every call, and a named tuple is built in a
    quarter of the time a frozen dataclass takes).

    ``source`` and ``destination`` are the two ends (the local workload is ``source`` when ``reporter`` is
    :attr:`Reporter.SOURCE`, ``destination`` otherwise). ``destination_service`` is the service host
    (``reviews.default.svc.cluster.local``), ``destination_service_name`` its short name (``reviews``).
    ``request_protocol`` is ``"http"`` or ``"grpc"``; ``response_code`` is 0 when no response was sent;
    ``grpc_response_status`` is the gRPC status of a gRPC call. ``response_flags`` is Envoy's flag string
    (``"-"``, ``"UO"``, or several joined by commas). Sizes are in bytes, the duration in milliseconds.
    ``request_messages``/``response_messages`` count gRPC stream messages and are recorded for gRPC only.

    The first eleven fields decide the series (the label values); the rest are the measurements.
    """

    reporter: Reporter
    source: Peer = _UNKNOWN_PEER
    destination: Peer = _UNKNOWN_PEER
    destination_service: str = UNKNOWN
    destination_service_name: str = UNKNOWN
    destination_service_namespace: str = UNKNOWN
    request_protocol: str = "http"
    response_code: int = 0
    grpc_response_status: int | None = None
    response_flags: str = "-"
    connection_security_policy: str = SecurityPolicy.UNKNOWN
    duration_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    request_messages: int = 0
    response_messages: int = 0


_KEY_FIELDS: Final = 11
# Bound keys kept at most; past it the table starts again (series themselves are never dropped).
_BOUND_LIMIT: Final = 8192
# labels, grpc, requests, duration buckets/sum, request bytes buckets/sum, response bytes buckets/sum, messages
_Snapshot = tuple[tuple[str, ...], bool, int, list[int], float, list[int], float, list[int], float, int, int]


def _label_values(rec: RequestRecord) -> tuple[str, ...]:
    src, dst = rec.source, rec.destination
    return (
        str(rec.reporter),
        src.workload,
        src.namespace,
        src.principal,
        src.app,
        src.version,
        src.canonical_service,
        src.canonical_revision,
        src.cluster,
        dst.workload,
        dst.namespace,
        dst.principal,
        dst.app,
        dst.version,
        rec.destination_service,
        rec.destination_service_name,
        rec.destination_service_namespace,
        dst.canonical_service,
        dst.canonical_revision,
        dst.cluster,
        rec.request_protocol,
        rec.response_flags,
        str(rec.connection_security_policy),
        str(rec.response_code),
        "" if rec.grpc_response_status is None else str(rec.grpc_response_status),
    )


def _bound(value: float) -> str:
    """A bucket bound as Envoy prints it: ``0.5``, ``1``, ``3600000`` (never ``1.0`` or ``3.6e+06``)."""
    return str(int(value)) if value == int(value) else repr(value)


class _Series:
    """The counters of one label set: a request count, three histograms and the gRPC message counts."""

    __slots__ = (
        "_lock",
        "duration",
        "duration_sum",
        "grpc",
        "labels",
        "request_bytes",
        "request_bytes_sum",
        "request_messages",
        "requests",
        "response_bytes",
        "response_bytes_sum",
        "response_messages",
    )

    def __init__(
        self,
        labels: tuple[str, ...],
        grpc: bool,
        duration_bounds: int,
        bytes_bounds: int,
        lock: threading.Lock,
    ) -> None:
        self._lock = lock
        self.labels = labels
        self.grpc = grpc
        self.requests = 0
        # One slot per bound plus the overflow slot; made cumulative only when scraped.
        self.duration = [0] * (duration_bounds + 1)
        self.duration_sum = 0.0
        self.request_bytes = [0] * (bytes_bounds + 1)
        self.request_bytes_sum = 0.0
        self.response_bytes = [0] * (bytes_bounds + 1)
        self.response_bytes_sum = 0.0
        self.request_messages = 0
        self.response_messages = 0

    def observe(
        self,
        duration_ms: float,
        request_bytes: int,
        response_bytes: int,
        request_messages: int = 0,
        response_messages: int = 0,
    ) -> None:
        """Count one call of this series in every standard metric."""
        with self._lock:
            self.requests += 1
            self.duration[bisect_left(DURATION_BUCKETS_MS, duration_ms)] += 1
            self.duration_sum += duration_ms
            self.request_bytes[bisect_left(BYTES_BUCKETS, request_bytes)] += 1
            self.request_bytes_sum += request_bytes
            self.response_bytes[bisect_left(BYTES_BUCKETS, response_bytes)] += 1
            self.response_bytes_sum += response_bytes
            if self.grpc:
                self.request_messages += request_messages
                self.response_messages += response_messages


#: A label set's counters, bound ahead: :meth:`IstioMetrics.bound` hands one out and
#: :meth:`BoundSeries.observe` counts a call in it without looking anything up.
BoundSeries = _Series


class IstioMetrics:
    """Istio's standard HTTP/gRPC metrics for one mesh, registered on ``registry``.

    Without a registry a private :class:`~prometheus_client.CollectorRegistry` is created, so two meshes
    in one process never collide; pass ``prometheus_client.REGISTRY`` to publish on the process-wide one
    (alongside the app's own metrics). Thread-safe; :meth:`record` never raises for well-typed input.

    Exposed families: ``istio_requests_total`` (counter), ``istio_request_duration_milliseconds``,
    ``istio_request_bytes``, ``istio_response_bytes`` (histograms with :data:`DURATION_BUCKETS_MS` /
    :data:`BYTES_BUCKETS`), and, for gRPC calls, ``istio_request_messages_total`` and
    ``istio_response_messages_total`` (counters). All carry :data:`LABEL_NAMES`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: CollectorRegistry = registry if registry is not None else CollectorRegistry()
        self._bounds: tuple[float, ...] = DURATION_BUCKETS_MS
        self._bytes_bounds: tuple[float, ...] = BYTES_BUCKETS
        self._series: dict[tuple[object, ...], _Series] = {}
        self._bound: dict[Hashable, _Series] = {}
        self._lock = threading.Lock()
        self._collector = _Collector(self)
        self.registry.register(self._collector)

    def record(self, rec: RequestRecord) -> None:
        """Count one finished call in every standard metric, once."""
        self.series(rec).observe(
            rec.duration_ms,
            rec.request_bytes,
            rec.response_bytes,
            rec.request_messages,
            rec.response_messages,
        )

    def series(self, rec: RequestRecord) -> BoundSeries:
        """The series ``rec``'s labels select (created on first use); its measurements are ignored."""
        key = rec[:_KEY_FIELDS]
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key, rec)
        return series

    def bound(self, key: Hashable, rec: Callable[[], RequestRecord]) -> BoundSeries:
        """The series bound to the caller's ``key``: a cheap tuple standing for a label set (for instance
        the peer header, the service host, the status and the flags), so that a repeat call finds its
        series with one lookup instead of building a :class:`RequestRecord`. ``rec`` builds the record of
        the labels the first time ``key`` is seen; the same key must always stand for the same labels::

            metrics.bound((peer_header, host, 200, "-"), lambda: RequestRecord(...)).observe(3.2, 0, 512)
        """
        series = self._bound.get(key)
        if series is None:
            series = self.series(rec())
            if len(self._bound) >= _BOUND_LIMIT:
                self._bound.clear()
            self._bound[key] = series
        return series

    def known(self, key: Hashable) -> BoundSeries | None:
        """The series :meth:`bound` has bound to ``key``, or ``None`` before it has: a caller that builds
        its label record in a closure can skip building the closure on every repeat call."""
        return self._bound.get(key)

    def forget_bound(self) -> None:
        """Drop every key :meth:`bound` has seen (when what a key stands for may have changed, for instance an
        endpoint's labels); the series and their counts stay."""
        self._bound = {}

    def _new_series(self, key: tuple[object, ...], rec: RequestRecord) -> _Series:
        with self._lock:
            series = self._series.get(key)
            if series is None:
                grpc = rec.request_protocol == "grpc"
                series = _Series(
                    _label_values(rec), grpc, len(self._bounds), len(self._bytes_bounds), self._lock
                )
                self._series[key] = series
            return series

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry's metrics as a ``/metrics`` response body and its ``Content-Type``.

        ``accept`` is the scraper's ``Accept`` header: Prometheus' text format 0.0.4 by default, OpenMetrics
        when the scraper asks for it.
        """
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def series_count(self) -> int:
        """How many distinct label sets have been recorded (a cardinality check)."""
        return len(self._series)

    def close(self) -> None:
        """Unregister from the registry (the counters are kept but no longer exposed)."""
        self.registry.unregister(self._collector)

    def _snapshot(self) -> list[_Snapshot]:
        with self._lock:
            return [
                (
                    s.labels,
                    s.grpc,
                    s.requests,
                    list(s.duration),
                    s.duration_sum,
                    list(s.request_bytes),
                    s.request_bytes_sum,
                    list(s.response_bytes),
                    s.response_bytes_sum,
                    s.request_messages,
                    s.response_messages,
                )
                for s in self._series.values()
            ]


def _cumulative(counts: list[int], bounds: tuple[str, ...]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip(bounds, counts, strict=True):
        total += count
        out.append((bound, total))
    return out


class _Collector(Collector):
    """Turns the counters into Prometheus families at scrape time."""

    def __init__(self, metrics: IstioMetrics) -> None:
        self._metrics = metrics
        self._duration_bounds = (*(_bound(b) for b in DURATION_BUCKETS_MS), "+Inf")
        self._bytes_bounds = (*(_bound(b) for b in BYTES_BUCKETS), "+Inf")

    def describe(self) -> list[Metric]:
        """The families this collector yields (without samples), so the registry can check for clashes."""
        return list(_Families())

    def collect(self) -> Iterator[Metric]:
        """Every family with one sample set per recorded label set; families with no samples yet (the
        gRPC message counters of an HTTP-only mesh) are left out, as Envoy leaves them out."""
        f = _Families()
        for labels, grpc, count, dur, dur_sum, qb, qb_sum, sb, sb_sum, qm, sm in self._metrics._snapshot():
            values = list(labels)
            f.requests.add_metric(values, count)
            f.duration.add_metric(values, _cumulative(dur, self._duration_bounds), dur_sum)
            f.request_bytes.add_metric(values, _cumulative(qb, self._bytes_bounds), qb_sum)
            f.response_bytes.add_metric(values, _cumulative(sb, self._bytes_bounds), sb_sum)
            if grpc:
                f.request_messages.add_metric(values, qm)
                f.response_messages.add_metric(values, sm)
        yield from (family for family in f if family.samples)


class _Families:
    """Fresh, empty families for one scrape, in exposition order."""

    def __init__(self) -> None:
        labels = list(LABEL_NAMES)
        self.requests = CounterMetricFamily(
            _REQUESTS, "Requests handled, as an Istio proxy counts them.", labels=labels
        )
        self.duration = HistogramMetricFamily(_DURATION, "Request duration in milliseconds.", labels=labels)
        self.request_bytes = HistogramMetricFamily(_REQUEST_BYTES, "Request sizes in bytes.", labels=labels)
        self.response_bytes = HistogramMetricFamily(
            _RESPONSE_BYTES, "Response sizes in bytes.", labels=labels
        )
        self.request_messages = CounterMetricFamily(
            _REQUEST_MESSAGES, "gRPC messages sent by clients.", labels=labels
        )
        self.response_messages = CounterMetricFamily(
            _RESPONSE_MESSAGES, "gRPC messages sent by servers.", labels=labels
        )

    def __iter__(self) -> Iterator[Metric]:
        yield self.requests
        yield self.duration
        yield self.request_bytes
        yield self.response_bytes
        yield self.request_messages
        yield self.response_messages
