"""Load -> dump -> load gives equal objects: for every document of Istio's valid corpus and for resources built
in Python. ``dump_yaml`` is what ``libmesh`` uses to show config back to users, so it must lose nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from libmesh.config import (
    ConsistentHashLB,
    Destination,
    DestinationRule,
    DestinationRuleSpec,
    HeaderOperations,
    Headers,
    HTTPBody,
    HTTPCookie,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPFaultInjectionAbort,
    HTTPFaultInjectionDelay,
    HTTPMatchRequest,
    HTTPMirrorPolicy,
    HTTPRetry,
    HTTPRewrite,
    HTTPRoute,
    HTTPRouteDestination,
    LoadBalancerSettings,
    MeshConfig,
    MeshConfigSpec,
    ObjectMeta,
    OutboundMode,
    OutboundTrafficPolicySettings,
    Percent,
    PortSelector,
    ServiceEntry,
    ServiceEntryResolution,
    ServiceEntrySpec,
    ServicePort,
    SimpleLB,
    StringMatch,
    Subset,
    TrafficPolicy,
    VirtualService,
    VirtualServiceSpec,
    dump_yaml,
    load_resources,
    load_yaml,
    parse_paths,
)
from libmesh.config.resources import Resource
from libmesh.errors import ConfigError
from tests.config.test_corpus import VALID_FILES
from tests.config.test_fuzz import _SETTINGS as _FUZZ_SETTINGS
from tests.config.test_fuzz import _typed_documents


def _reload(resources: list[Resource]) -> list[Resource]:
    """Dump to YAML and load that back (validation included: a dump must be valid config)."""
    return list(load_yaml(dump_yaml(resources), file="dumped.yaml").resources)


@pytest.mark.parametrize("rel", VALID_FILES)
def test_corpus_file_round_trips(corpus: Path, rel: str) -> None:
    """Each document, alone and as part of the file's stream, comes back equal; a second dump is identical."""
    config = parse_paths([corpus / rel])
    assert config.errors == ()
    resources = list(config.resources)
    for doc in config.documents:
        assert _reload([doc.resource]) == [doc.resource], f"{rel}:{doc.line}: changed by dump and reload"
    assert _reload(resources) == resources
    assert dump_yaml(_reload(resources)) == dump_yaml(resources)


def _header(resource: Resource) -> Resource:
    """The resource as the loader returns it: ``apiVersion`` and ``kind`` filled in as dumping writes them."""
    return dataclasses.replace(resource, api_version=resource.default_api_version(), kind=resource.KIND)


_VS = VirtualService(
    metadata=ObjectMeta(name="reviews", namespace="bookinfo", labels={"app": "reviews"}),
    spec=VirtualServiceSpec(
        hosts=("reviews", "reviews.bookinfo.svc.cluster.local"),
        http=(
            HTTPRoute(
                name="jason",
                match=(
                    HTTPMatchRequest(
                        uri=StringMatch(prefix="/api"),
                        headers={"end-user": StringMatch(exact="jason"), "x-any": StringMatch()},
                        query_params={"v": StringMatch(regex="[0-9]+")},
                        ignore_uri_case=True,
                    ),
                ),
                route=(
                    HTTPRouteDestination(destination=Destination(host="reviews", subset="v2"), weight=75),
                    HTTPRouteDestination(
                        destination=Destination(host="reviews", subset="v3", port=PortSelector(number=9080)),
                        weight=25,
                        headers=Headers(response=HeaderOperations(remove=("x-internal",))),
                    ),
                ),
                timeout=timedelta(seconds=1, milliseconds=500),
                retries=HTTPRetry(
                    attempts=3, per_try_timeout=timedelta(milliseconds=250), retry_on="5xx,reset"
                ),
                rewrite=HTTPRewrite(uri="/v2/api"),
                mirrors=(
                    HTTPMirrorPolicy(
                        destination=Destination(host="reviews-shadow"), percentage=Percent(value=2.5)
                    ),
                ),
                headers=Headers(request=HeaderOperations(set={"x-env": "prod"}, add={"x-trace": "1"})),
            ),
            HTTPRoute(
                match=(HTTPMatchRequest(uri=StringMatch(exact="/health")),),
                direct_response=HTTPDirectResponse(status=200, body=HTTPBody(bytes_=b"\x00ok\xff")),
            ),
            HTTPRoute(
                route=(HTTPRouteDestination(destination=Destination(host="ratings")),),
                fault=HTTPFaultInjection(
                    delay=HTTPFaultInjectionDelay(
                        fixed_delay=timedelta(hours=1, minutes=30), percentage=Percent(value=0.1)
                    ),
                    abort=HTTPFaultInjectionAbort(http_status=503, percentage=Percent(value=100.0)),
                ),
            ),
        ),
    ),
)

_DR = DestinationRule(
    metadata=ObjectMeta(name="reviews"),
    spec=DestinationRuleSpec(
        host="reviews",
        traffic_policy=TrafficPolicy(
            load_balancer=LoadBalancerSettings(
                consistent_hash=ConsistentHashLB(
                    http_cookie=HTTPCookie(name="user", ttl=timedelta(seconds=0))
                )
            ),
        ),
        subsets=(
            Subset(name="v1", labels={"version": "v1"}),
            Subset(
                name="v2",
                labels={"version": "v2"},
                traffic_policy=TrafficPolicy(
                    load_balancer=LoadBalancerSettings(simple=SimpleLB.LEAST_REQUEST)
                ),
            ),
        ),
    ),
)

_SE = ServiceEntry(
    metadata=ObjectMeta(name="httpbin", namespace="egress"),
    spec=ServiceEntrySpec(
        hosts=("httpbin.org",),
        ports=(ServicePort(number=443, name="https", protocol="HTTPS"),),
        resolution=ServiceEntryResolution.DNS,
    ),
)

_MESH = MeshConfig(
    metadata=ObjectMeta(name="mesh"),
    spec=MeshConfigSpec(
        outbound_traffic_policy=OutboundTrafficPolicySettings(mode=OutboundMode.REGISTRY_ONLY),
        default_http_retry_policy=HTTPRetry(attempts=2, retry_on="connect-failure"),
        propagate_headers=("end-user",),
    ),
)


@pytest.mark.parametrize("resource", [_VS, _DR, _SE, _MESH], ids=lambda r: r.KIND)
def test_python_built_resource_round_trips(resource: Resource) -> None:
    """A resource built in Python validates, dumps, and loads back equal (with its header filled in)."""
    assert load_resources([resource]).errors == ()
    (back,) = _reload([resource])
    assert back == _header(resource)
    assert _reload([back]) == [back]


def test_python_built_stream_round_trips() -> None:
    """Several resources dump to one multi-document stream that loads back in order."""
    resources = [_VS, _DR, _SE, _MESH]
    assert _reload(resources) == [_header(r) for r in resources]


def test_dump_spells_fields_as_istio_does() -> None:
    """The dump uses Istio's field names and value syntax (camelCase, Go durations, enum names, base64)."""
    text = dump_yaml(_VS)
    for expected in (
        "perTryTimeout: 250ms",
        "timeout: 1.5s",
        "fixedDelay: 5400s",
        "ignoreUriCase: true",
        "directResponse:",
        "bytes: AG9r/w==",
        "retryOn: 5xx,reset",
        "apiVersion: networking.istio.io/v1",
    ):
        assert expected in text, f"{expected!r} not in the dump:\n{text}"
    assert "simple: LEAST_REQUEST" in dump_yaml(_DR)


# PyYAML folds these line breaks inside quoted scalars when dumping with allow_unicode (see
# test_dump_keeps_unicode_line_breaks); the property leaves them out so that it covers everything else.
@pytest.mark.parametrize("text", ["a\x85b", "a\u2028b", "\u2029"])
def test_dump_keeps_unicode_line_breaks(text: str) -> None:
    """Strings holding YAML's Unicode line breaks come back unchanged."""
    vs = VirtualService(
        metadata=ObjectMeta(name="r", annotations={"note": text}),
        spec=VirtualServiceSpec(
            hosts=("reviews",),
            http=(HTTPRoute(route=(HTTPRouteDestination(destination=Destination(host="reviews")),)),),
        ),
    )
    assert _reload([vs])[0].metadata.annotations == {"note": text}


@_FUZZ_SETTINGS
@given(st.lists(_typed_documents(), min_size=1, max_size=3))
def test_generated_documents_round_trip(docs: list[dict[str, Any]]) -> None:
    """Whatever generated config loads cleanly also survives dump and reload unchanged."""
    try:
        config = load_yaml(yaml.safe_dump_all(docs), file="gen.yaml")
    except ConfigError:
        return  # rejected input is test_fuzz's business
    resources = list(config.resources)
    back = _reload(resources)
    assert back == resources
    assert dump_yaml(back) == dump_yaml(resources)
