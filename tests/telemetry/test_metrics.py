"""Istio's standard metrics: names, types, labels, buckets and counts, read back through prometheus-client's
own parsers as Prometheus would scrape them."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from libmesh.telemetry.metrics import (
    DURATION_BUCKETS_MS,
    LABEL_NAMES,
    PEER_HEADER,
    IstioMetrics,
    Peer,
    Reporter,
    RequestRecord,
    SecurityPolicy,
    decode_peer,
    encode_peer,
)
from libmesh.workload import Workload

PRODUCTPAGE = Peer.from_workload(
    Workload("productpage-v1", "default", {"app": "productpage", "version": "v1"}, "bookinfo-productpage")
)
REVIEWS_V2 = Peer.from_labels({"app": "reviews", "version": "v2"}, workload="reviews-v2", namespace="default")
SERVICE = "reviews.default.svc.cluster.local"

# Envoy's default bounds as its Prometheus endpoint prints them (Istio sets none of its own).
ENVOY_BOUNDS = [
    "0.5",
    "1",
    "5",
    "10",
    "25",
    "50",
    "100",
    "250",
    "500",
    "1000",
    "2500",
    "5000",
    "10000",
    "30000",
    "60000",
    "300000",
    "600000",
    "1800000",
    "3600000",
    "+Inf",
]


def client_record(**kw: object) -> RequestRecord:
    fields: dict[str, object] = {
        "source": PRODUCTPAGE,
        "destination": REVIEWS_V2,
        "destination_service": SERVICE,
        "destination_service_name": "reviews",
        "destination_service_namespace": "default",
        "response_code": 200,
        "duration_ms": 3.2,
        "request_bytes": 120,
        "response_bytes": 4500,
    }
    fields.update(kw)
    return RequestRecord(Reporter.SOURCE, **fields)  # type: ignore[arg-type]


def families(metrics: IstioMetrics) -> dict[str, Metric]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def samples(family: Metric, suffix: str = "", **labels: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_families_have_istio_names_and_types() -> None:
    metrics = IstioMetrics()
    metrics.record(client_record())
    found = {name: f.type for name, f in families(metrics).items()}
    assert found == {
        "istio_requests": "counter",  # the parser drops the _total suffix of counters
        "istio_request_duration_milliseconds": "histogram",
        "istio_request_bytes": "histogram",
        "istio_response_bytes": "histogram",
    }
    body = metrics.exposition()[0].decode()
    assert "# TYPE istio_requests_total counter" in body
    assert "istio_requests_total{" in body


def test_client_side_labels_are_istios() -> None:
    metrics = IstioMetrics()
    metrics.record(client_record())
    [(labels, value)] = samples(families(metrics)["istio_requests"], "_total")
    assert value == 1
    assert set(labels) == set(LABEL_NAMES)
    assert labels == {
        "reporter": "source",
        "source_workload": "productpage-v1",
        "source_workload_namespace": "default",
        "source_principal": "unknown",
        "source_app": "productpage",
        "source_version": "v1",
        "source_canonical_service": "productpage",
        "source_canonical_revision": "v1",
        "source_cluster": "unknown",
        "destination_workload": "reviews-v2",
        "destination_workload_namespace": "default",
        "destination_principal": "unknown",
        "destination_app": "reviews",
        "destination_version": "v2",
        "destination_service": SERVICE,
        "destination_service_name": "reviews",
        "destination_service_namespace": "default",
        "destination_canonical_service": "reviews",
        "destination_canonical_revision": "v2",
        "destination_cluster": "unknown",
        "request_protocol": "http",
        "response_flags": "-",
        "connection_security_policy": "unknown",
        "response_code": "200",
        "grpc_response_status": "",
    }


def test_unknown_peer_gets_istios_placeholders() -> None:
    metrics = IstioMetrics()
    metrics.record(
        RequestRecord(
            Reporter.DESTINATION,
            destination=REVIEWS_V2,
            destination_service=SERVICE,
            response_code=503,
            response_flags="UO",
            connection_security_policy=SecurityPolicy.NONE,
        )
    )
    [(labels, _)] = samples(families(metrics)["istio_requests"], "_total")
    assert labels["reporter"] == "destination"
    for name in ("source_workload", "source_workload_namespace", "source_app", "source_version"):
        assert labels[name] == "unknown"
    assert labels["source_canonical_service"] == "unknown"
    assert labels["source_canonical_revision"] == "latest"
    assert labels["connection_security_policy"] == "none"
    assert labels["response_flags"] == "UO"
    assert labels["response_code"] == "503"


def test_counts_accumulate_per_label_set() -> None:
    metrics = IstioMetrics()
    for _ in range(7):
        metrics.record(client_record())
    for _ in range(3):
        metrics.record(client_record(response_code=503, response_flags="URX"))
    metrics.record(RequestRecord(Reporter.DESTINATION, PRODUCTPAGE, REVIEWS_V2, SERVICE, response_code=200))
    counts = families(metrics)["istio_requests"]
    assert [v for _, v in samples(counts, "_total", reporter="source", response_code="200")] == [7]
    assert [v for _, v in samples(counts, "_total", reporter="source", response_code="503")] == [3]
    assert [v for _, v in samples(counts, "_total", reporter="destination")] == [1]
    assert metrics.series_count() == 3


def test_duration_buckets_are_envoys_defaults() -> None:
    metrics = IstioMetrics()
    for duration in (0.5, 0.6, 3.2, 250.0, 3_600_000.0, 3_600_001.0):
        metrics.record(client_record(duration_ms=duration))
    hist = families(metrics)["istio_request_duration_milliseconds"]
    buckets = {labels["le"]: value for labels, value in samples(hist, "_bucket")}
    assert list(buckets) == ENVOY_BOUNDS
    assert len(DURATION_BUCKETS_MS) + 1 == len(ENVOY_BOUNDS)
    # A bound is inclusive, and buckets are cumulative.
    assert buckets["0.5"] == 1
    assert buckets["1"] == 2
    assert buckets["5"] == 3
    assert buckets["250"] == 4
    assert buckets["3600000"] == 5
    assert buckets["+Inf"] == 6
    [(_, total)] = samples(hist, "_sum")
    assert total == pytest.approx(0.5 + 0.6 + 3.2 + 250.0 + 3_600_000.0 + 3_600_001.0)
    [(_, count)] = samples(hist, "_count")
    assert count == 6


def test_size_histograms() -> None:
    metrics = IstioMetrics()
    metrics.record(client_record(request_bytes=0, response_bytes=4500))
    metrics.record(client_record(request_bytes=120, response_bytes=10_000_000))
    found = families(metrics)
    requests = {labels["le"]: value for labels, value in samples(found["istio_request_bytes"], "_bucket")}
    responses = {labels["le"]: value for labels, value in samples(found["istio_response_bytes"], "_bucket")}
    assert list(requests) == ENVOY_BOUNDS
    assert requests["0.5"] == 1 and requests["100"] == 1 and requests["250"] == 2
    assert responses["2500"] == 0 and responses["5000"] == 1 and responses["3600000"] == 1
    assert responses["+Inf"] == 2
    assert samples(found["istio_response_bytes"], "_sum")[0][1] == 10_004_500


def test_grpc_calls_count_messages_and_status() -> None:
    metrics = IstioMetrics()
    metrics.record(client_record())
    grpc = client_record(
        request_protocol="grpc", grpc_response_status=14, request_messages=3, response_messages=5
    )
    metrics.record(grpc)
    metrics.record(grpc)
    found = families(metrics)
    assert [v for _, v in samples(found["istio_request_messages"], "_total")] == [6]
    assert [v for _, v in samples(found["istio_response_messages"], "_total")] == [10]
    [(labels, _)] = samples(found["istio_request_messages"], "_total")
    assert labels["request_protocol"] == "grpc"
    assert labels["grpc_response_status"] == "14"
    # Plain HTTP series have no message counters, as in Istio.
    assert not samples(found["istio_request_messages"], "_total", request_protocol="http")


def test_each_mesh_has_its_own_registry() -> None:
    first, second = IstioMetrics(), IstioMetrics()
    first.record(client_record())
    assert first.registry is not second.registry
    assert families(second) == {}
    assert len(families(first)["istio_requests"].samples) == 1


def test_shared_registry_refuses_a_second_instance() -> None:
    registry = CollectorRegistry()
    metrics = IstioMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        IstioMetrics(registry)
    metrics.close()
    IstioMetrics(registry)  # after close the names are free again


def test_openmetrics_exposition_when_asked() -> None:
    metrics = IstioMetrics()
    metrics.record(client_record())
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    found = {f.name: f for f in parse_openmetrics(body.decode())}  # type: ignore[no-untyped-call]
    assert found["istio_requests"].type == "counter"
    assert [s.value for s in found["istio_requests"].samples if s.name == "istio_requests_total"] == [1]


def test_concurrent_records_are_all_counted() -> None:
    metrics = IstioMetrics()
    records = [client_record(response_code=code) for code in (200, 503)]

    def work() -> None:
        for i in range(5000):
            metrics.record(records[i % 2])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = families(metrics)["istio_requests"]
    assert sorted(v for _, v in samples(counts, "_total")) == [20000, 20000]
    hist = families(metrics)["istio_request_duration_milliseconds"]
    assert sum(v for _, v in samples(hist, "_count")) == 40000


@pytest.mark.parametrize(
    ("labels", "workload", "expected"),
    [
        ({"app": "reviews", "version": "v2"}, "reviews-v2", ("reviews", "v2", "reviews", "v2")),
        ({}, "reviews-v2", ("unknown", "unknown", "reviews-v2", "latest")),
        (
            {"app.kubernetes.io/name": "rev", "app.kubernetes.io/version": "3"},
            "w",
            ("rev", "3", "rev", "3"),
        ),
        (
            {
                "app": "reviews",
                "version": "v2",
                "service.istio.io/canonical-name": "reviews-canonical",
                "service.istio.io/canonical-revision": "r7",
            },
            "w",
            ("reviews", "v2", "reviews-canonical", "r7"),
        ),
        # Canonical name prefers app.kubernetes.io/name over app, as Istio's injector does.
        ({"app": "a", "app.kubernetes.io/name": "b"}, "w", ("a", "unknown", "b", "latest")),
    ],
)
def test_peer_from_labels_follows_istios_fallbacks(
    labels: dict[str, str], workload: str, expected: tuple[str, str, str, str]
) -> None:
    peer = Peer.from_labels(labels, workload=workload)
    assert (peer.app, peer.version, peer.canonical_service, peer.canonical_revision) == expected


def test_peer_from_workload() -> None:
    assert PRODUCTPAGE.workload == "productpage-v1"
    assert PRODUCTPAGE.namespace == "default"
    assert PRODUCTPAGE.principal == "unknown"  # no mutual TLS, so no verified identity
    assert Peer.from_workload(Workload(), cluster="east").cluster == "east"


def test_peer_header_round_trip() -> None:
    assert PEER_HEADER == "x-libmesh-peer"
    encoded = encode_peer(PRODUCTPAGE)
    assert encoded == "w=productpage-v1,ns=default,app=productpage,v=v1,cs=productpage,cr=v1"
    assert decode_peer(encoded) == PRODUCTPAGE
    odd = Peer(workload="a,b=c", namespace="ns with space", cluster="Kubernetes")
    assert decode_peer(encode_peer(odd)) == odd
    assert encode_peer(Peer()) == ""


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("garbage", None),
        ("zz=1,=2,w", None),
        ("w=a,unknown=b", Peer(workload="a")),
        ("w=" + "x" * 300, Peer(workload="x" * 253)),
        ("w=" + "x" * 3000, None),
        (" w=a , ns=b ", Peer(workload="a", namespace="b")),
    ],
)
def test_peer_header_from_the_network_never_raises(header: str | None, expected: Peer | None) -> None:
    assert decode_peer(header) == expected
