"""DestinationRule validation: cases ported from Istio's validation tests plus the CRD corpus."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from libmesh.config import parse_yaml
from libmesh.errors import ConfigIssue

#: A DestinationRule spec prefix; cases append the traffic policy as YAML flow.
TP = "host: r\ntrafficPolicy: "


def _dr(spec: str, namespace: str = "ns5") -> list[ConfigIssue]:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    text = (
        f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec:\n{body}\n"
    )
    return list(parse_yaml(text, namespace=namespace).issues)


def _errors(spec: str, namespace: str = "ns5") -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _dr(spec, namespace) if i.is_error]


def _warnings(spec: str) -> list[tuple[str, str]]:
    return [(i.path, i.message) for i in _dr(spec) if not i.is_error and "not yet enforced" not in i.message]


VALID = {
    "simple subsets": """
        host: reviews
        subsets:
        - {name: v1, labels: {version: v1}}
        - {name: v2, labels: {version: v2}}
    """,
    "wildcard host": "host: '*.example.com'",
    "full wildcard host": "host: '*'",
    "top-level traffic policy": """
        host: reviews
        trafficPolicy:
          loadBalancer: {simple: ROUND_ROBIN}
          connectionPool: {tcp: {maxConnections: 7}, http: {http2MaxRequests: 11}}
          outlierDetection: {minHealthPercent: 20}
    """,
    "subset traffic policy": """
        host: reviews
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy:
            loadBalancer: {simple: LEAST_REQUEST}
            connectionPool: {tcp: {maxConnections: 7, connectTimeout: 2s}}
            outlierDetection:
              {minHealthPercent: 30, interval: 2s, baseEjectionTime: 2s, maxEjectionPercent: 50}
    """,
    "connection pool, every http field": """
        host: reviews
        trafficPolicy:
          connectionPool:
            http:
              http1MaxPendingRequests: 2
              http2MaxRequests: 11
              maxRequestsPerConnection: 5
              maxRetries: 4
              idleTimeout: 30s
              maxConcurrentStreams: 5
              http2KeepAlive: {interval: 15s, timeout: 5s}
    """,
    "tcp idle timeout 0 disables it": TP + "{connectionPool: {tcp: {idleTimeout: 0s}}}",
    "consistent hash cookie": """
        host: reviews
        trafficPolicy:
          loadBalancer:
            consistentHash:
              httpCookie:
                name: test-cookie
                ttl: 3600s
                attributes: [{name: SameSite, value: Strict}, {name: Secure}, {name: HttpOnly}]
    """,
    "maglev with a prime table": TP + "{loadBalancer: {consistentHash: {useSourceIp: true, "
    "maglev: {tableSize: 65537}}}}",
    "ring hash": TP + "{loadBalancer: {consistentHash: {httpHeaderName: x-user, "
    "ringHash: {minimumRingSize: 1024}}}}",
    "warmup": TP + "{loadBalancer: {warmup: {duration: 300s, minimumPercent: 10, aggression: 1.5}}}",
    "locality distribute": """
        host: r
        trafficPolicy:
          loadBalancer:
            localityLbSetting:
              distribute:
              - {from: us-west/zone1/*, to: {us-west/zone1/*: 80, us-west/zone2/*: 20}}
          outlierDetection: {consecutive5xxErrors: 5}
    """,
    "locality failover with outlier detection": """
        host: r
        trafficPolicy:
          loadBalancer:
            localityLbSetting: {failover: [{from: us-east, to: eu-west}]}
          outlierDetection: {consecutive5xxErrors: 5}
    """,
    "zone aware failover": """
        host: r
        trafficPolicy:
          loadBalancer: {zoneAwareLbSetting: {failover: [{from: us-east, to: eu-west}]}}
          outlierDetection: {consecutive5xxErrors: 5}
    """,
    "port level settings": """
        host: r
        trafficPolicy:
          portLevelSettings:
          - port: {number: 80}
            loadBalancer: {simple: RANDOM}
          - port: {number: 443}
            tls: {mode: SIMPLE, sni: r.example.com}
    """,
    "tls simple with CA and SAN": """
        host: r
        trafficPolicy: {tls: {mode: SIMPLE, caCertificates: ca.pem, subjectAltNames: [r.default.svc]}}
    """,
    "tls simple with credential and insecureSkipVerify false": """
        host: r
        trafficPolicy:
          tls:
            {mode: SIMPLE, credentialName: test, subjectAltNames: [r.default.svc], insecureSkipVerify: false}
    """,
    "tls mutual with files": """
        host: r
        trafficPolicy:
          tls: {mode: MUTUAL, caCertificates: ca, privateKey: key, clientCertificate: cert}
    """,
    "tls mutual with credential and insecureSkipVerify": """
        host: r
        trafficPolicy: {tls: {mode: MUTUAL, credentialName: test, insecureSkipVerify: true}}
    """,
    "tls mutual, insecureSkipVerify without CA": """
        host: r
        trafficPolicy:
          tls: {mode: MUTUAL, privateKey: key, clientCertificate: cert, insecureSkipVerify: true}
    """,
    "configmap credential in own namespace": """
        host: r
        trafficPolicy: {tls: {mode: SIMPLE, credentialName: configmap://ns5/ca-bundle}}
    """,
    "tunnel": TP + "{tunnel: {protocol: CONNECT, targetHost: 10.0.0.1, targetPort: 8443}}",
    "tunnel by host name": TP + "{tunnel: {targetHost: egress.example.com, targetPort: 443}}",
    "proxy protocol": TP + "{proxyProtocol: {version: V2}}",
    "retry budget": TP + "{retryBudget: {percent: 25, minRetryConcurrency: 3}}",
    "selector with exportTo own namespace": """
        host: r
        workloadSelector: {matchLabels: {app: a}}
        exportTo: [.]
    """,
    "exportTo namespaces": "host: r\nexportTo: [., ns1]",
    "exportTo star": "host: r\nexportTo: ['*']",
}


@pytest.mark.parametrize("spec", VALID.values(), ids=list(VALID))
def test_valid(spec: str) -> None:
    assert _errors(spec) == []


INVALID = [
    ("empty host", "host: ''", "spec.host", "empty domain name"),
    ("bad host", "host: 'foo.*.com'", "spec.host", 'label "*" invalid'),
    (
        "empty subset name",
        "host: r\nsubsets: [{name: ''}]",
        "spec.subsets[0].name",
        "subset name cannot be empty",
    ),
    ("bad subset name", "host: r\nsubsets: [{name: v1.2}]", "spec.subsets[0].name", "subset name is invalid"),
    (
        "duplicate subsets",
        "host: r\nsubsets: [{name: foo}, {name: foo}]",
        "spec.subsets[1].name",
        "duplicate subset names: foo",
    ),
    (
        "bad subset labels",
        "host: r\nsubsets: [{name: v1, labels: {'a b': x}}]",
        "spec.subsets[0].labels[a b]",
        'invalid label key: "a b"',
    ),
    ("empty traffic policy", TP + "{}", "spec.trafficPolicy", "at least one field"),
    (
        "empty subset traffic policy",
        "host: r\nsubsets: [{name: v1, trafficPolicy: {}}]",
        "spec.subsets[0].trafficPolicy",
        "at least one field",
    ),
    (
        "empty connection pool",
        TP + "{connectionPool: {}}",
        "spec.trafficPolicy.connectionPool",
        "connection pool must have at least one field",
    ),
    (
        "negative max connections",
        TP + "{connectionPool: {tcp: {maxConnections: -1}}}",
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "non-negative",
    ),
    (
        "sub-millisecond connect timeout",
        TP + "{connectionPool: {tcp: {connectTimeout: 2.0005s}}}",
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "ms precision",
    ),
    (
        "sub-millisecond max connection duration",
        TP + "{connectionPool: {tcp: {maxConnectionDuration: 500us}}}",
        "spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration",
        "1ms",
    ),
    (
        "negative pending requests",
        TP + "{connectionPool: {http: {http1MaxPendingRequests: -1}}}",
        "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
        "non-negative",
    ),
    (
        "negative http2 max requests",
        TP + "{connectionPool: {http: {http2MaxRequests: -1}}}",
        "spec.trafficPolicy.connectionPool.http.http2MaxRequests",
        "non-negative",
    ),
    (
        "negative requests per connection",
        TP + "{connectionPool: {http: {maxRequestsPerConnection: -1}}}",
        "spec.trafficPolicy.connectionPool.http.maxRequestsPerConnection",
        "non-negative",
    ),
    (
        "negative max retries",
        TP + "{connectionPool: {http: {maxRetries: -1}}}",
        "spec.trafficPolicy.connectionPool.http.maxRetries",
        "non-negative",
    ),
    (
        "negative max concurrent streams",
        TP + "{connectionPool: {http: {maxConcurrentStreams: -1}}}",
        "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams",
        "non-negative",
    ),
    (
        "bad http idle timeout",
        TP + "{connectionPool: {http: {idleTimeout: 30.0005s}}}",
        "spec.trafficPolicy.connectionPool.http.idleTimeout",
        "ms precision",
    ),
    (
        "upgrade with client protocol",
        TP + "{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}",
        "spec.trafficPolicy.connectionPool.http.useClientProtocol",
        "must not be true",
    ),
    (
        "keepalive without interval",
        TP + "{connectionPool: {http: {http2KeepAlive: {timeout: 5s}}}}",
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive.interval",
        "interval is required",
    ),
    (
        "keepalive without timeout",
        TP + "{connectionPool: {http: {http2KeepAlive: {interval: 15s}}}}",
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout",
        "timeout is required",
    ),
    (
        "bad keepalive interval",
        TP + "{connectionPool: {http: {http2KeepAlive: {interval: 15.0005s, timeout: 5s}}}}",
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive.interval",
        "ms precision",
    ),
    (
        "bad tcp keepalive time",
        TP + "{connectionPool: {tcp: {tcpKeepalive: {time: 0s}}}}",
        "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time",
        "1ms",
    ),
    (
        "bad outlier interval",
        TP + "{outlierDetection: {interval: 2.0005s}}",
        "spec.trafficPolicy.outlierDetection.interval",
        "ms precision",
    ),
    (
        "bad base ejection time",
        TP + "{outlierDetection: {baseEjectionTime: 2.0005s}}",
        "spec.trafficPolicy.outlierDetection.baseEjectionTime",
        "ms precision",
    ),
    (
        "max ejection percent too high",
        TP + "{outlierDetection: {maxEjectionPercent: 105}}",
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "not in range 0..100",
    ),
    (
        "min health percent too low",
        TP + "{outlierDetection: {minHealthPercent: -1}}",
        "spec.trafficPolicy.outlierDetection.minHealthPercent",
        "not in range 0..100",
    ),
    (
        "min health percent too high",
        TP + "{outlierDetection: {minHealthPercent: 101}}",
        "spec.trafficPolicy.outlierDetection.minHealthPercent",
        "not in range 0..100",
    ),
    (
        "local origin failures without split",
        TP + "{outlierDetection: {consecutiveLocalOriginFailures: 10}}",
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
        "splitExternalLocalOriginErrors is false",
    ),
    (
        "http error code out of range",
        TP + "{outlierDetection: {outlierDetectionHttpErrorCodes: [503, 600]}}",
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[1]",
        "between 100 and 599",
    ),
    (
        "cookie without name",
        TP + "{loadBalancer: {consistentHash: {httpCookie: {name: '', ttl: 1h}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
        "name required",
    ),
    (
        "duplicate cookie attribute",
        TP + "{loadBalancer: {consistentHash: {httpCookie: {name: c, "
        "attributes: [{name: SameSite, value: Strict}, {name: SameSite, value: Lax}]}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[1].name",
        "duplicate cookie attribute name: SameSite",
    ),
    (
        "empty cookie attribute",
        TP + "{loadBalancer: {consistentHash: {httpCookie: {name: c, attributes: [{name: ''}]}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].name",
        "cannot be empty",
    ),
    (
        "maglev table not prime",
        TP + "{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "prime",
    ),
    (
        "maglev table unset",
        TP + "{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "must be set",
    ),
    (
        "maglev table too large",
        TP + "{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000011}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "less than 5000011",
    ),
    (
        "deprecated ring size with maglev",
        TP + "{loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 10, "
        "maglev: {tableSize: 65537}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
        "only one of minimumRingSize or maglev/ringHash",
    ),
    (
        "ring too large",
        TP + "{loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 9000000}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize",
        "at most 8388608",
    ),
    (
        "locality and zone aware",
        TP + "{loadBalancer: {localityLbSetting: {}, zoneAwareLbSetting: {}}}",
        "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting",
        "only one of localityLbSetting and zoneAwareLbSetting",
    ),
    (
        "distribute and failover",
        TP + "{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 100}}], "
        "failover: [{from: a, to: b}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "'distribute' and 'failover'",
    ),
    (
        "distribute weights not 100",
        TP + "{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 60, c/*: 30}}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
        "total locality weight 90 != 100",
    ),
    (
        "distribute weight out of range",
        TP + "{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 0}}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
        "range [1, 100]",
    ),
    (
        "distribute wildcard not last",
        TP + "{loadBalancer: {localityLbSetting: {distribute: [{from: 'a/*/c', to: {b/*: 100}}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
        "must be in the end",
    ),
    (
        "distribute overlapping sources",
        TP + "{loadBalancer: {localityLbSetting: {distribute: [{from: a/*, to: {b/*: 100}}, "
        "{from: a/z1/*, to: {b/*: 100}}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
        "overlap",
    ),
    (
        "empty locality part",
        TP + "{loadBalancer: {localityLbSetting: {distribute: [{from: a//c, to: {b/*: 100}}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
        "empty region/zone/subzone",
    ),
    (
        "failover to itself",
        TP + "{loadBalancer: {localityLbSetting: {failover: [{from: a, to: a}]}}, "
        "outlierDetection: {consecutive5xxErrors: 1}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
        "different regions",
    ),
    (
        "failover with zone",
        TP + "{loadBalancer: {localityLbSetting: {failover: [{from: a/z, to: b}]}}, "
        "outlierDetection: {consecutive5xxErrors: 1}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
        "only specify region",
    ),
    (
        "failover wildcard",
        TP + "{loadBalancer: {localityLbSetting: {failover: [{from: '*', to: b}]}}, "
        "outlierDetection: {consecutive5xxErrors: 1}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
        "wildcard",
    ),
    (
        "failover and topology priority",
        TP + "{loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], "
        "failoverPriority: [topology.kubernetes.io/zone]}}, outlierDetection: {consecutive5xxErrors: 1}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[0]",
        "topology label",
    ),
    (
        "zone aware topology priority",
        TP + "{loadBalancer: {zoneAwareLbSetting: "
        "{failoverPriority: [topology.kubernetes.io/region]}}, outlierDetection: {consecutive5xxErrors: 1}}",
        "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting.failoverPriority[0]",
        "must not use topology label",
    ),
    (
        "warmup percent over 100",
        TP + "{loadBalancer: {warmup: {duration: 300s, minimumPercent: 150.0}}}",
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
        "invalid value 150",
    ),
    (
        "warmup percent negative",
        TP + "{loadBalancer: {warmup: {duration: 300s, minimumPercent: -1}}}",
        "spec.trafficPolicy.loadBalancer.warmup.minimumPercent",
        "between 0 and 100",
    ),
    (
        "warmup aggression negative",
        TP + "{loadBalancer: {warmup: {duration: 300s, aggression: -0.1}}}",
        "spec.trafficPolicy.loadBalancer.warmup.aggression",
        "greater than 0",
    ),
    (
        "warmup aggression zero",
        TP + "{loadBalancer: {warmup: {duration: 300s, aggression: 0}}}",
        "spec.trafficPolicy.loadBalancer.warmup.aggression",
        "greater than 0",
    ),
    (
        "warmup without duration",
        TP + "{loadBalancer: {warmup: {minimumPercent: 5.0}}}",
        "spec.trafficPolicy.loadBalancer.warmup.duration",
        "Required value",
    ),
    (
        "warmup duration too short",
        TP + "{loadBalancer: {warmup: {duration: 0s}}}",
        "spec.trafficPolicy.loadBalancer.warmup.duration",
        "1ms",
    ),
    (
        "warmup and warmupDurationSecs",
        TP + "{loadBalancer: {warmupDurationSecs: 10s, warmup: {duration: 10s}}}",
        "spec.trafficPolicy.loadBalancer.warmup",
        "only one of warmupDurationSecs or warmup",
    ),
    (
        "port level without port",
        TP + "{portLevelSettings: [{loadBalancer: {simple: ROUND_ROBIN}}]}",
        "spec.trafficPolicy.portLevelSettings[0]",
        "must have valid port",
    ),
    (
        "port level port out of range",
        TP + "{portLevelSettings: [{port: {number: 70000}, loadBalancer: {simple: RANDOM}}]}",
        "spec.trafficPolicy.portLevelSettings[0].port.number",
        "port must be between 1-65535",
    ),
    (
        "port level without settings",
        TP + "{portLevelSettings: [{port: {number: 80}}]}",
        "spec.trafficPolicy.portLevelSettings[0]",
        "at least one field",
    ),
    (
        "port level bad pool",
        TP + "{portLevelSettings: [{port: {number: 80}, connectionPool: {}}]}",
        "spec.trafficPolicy.portLevelSettings[0].connectionPool",
        "at least one field",
    ),
    (
        "insecureSkipVerify simple with CA",
        TP + "{tls: {mode: SIMPLE, caCertificates: test, insecureSkipVerify: true}}",
        "spec.trafficPolicy.tls.insecureSkipVerify",
        "when insecureSkipVerify is true",
    ),
    (
        "insecureSkipVerify simple with credential",
        TP + "{tls: {mode: SIMPLE, credentialName: test, insecureSkipVerify: true}}",
        "spec.trafficPolicy.tls.insecureSkipVerify",
        "when insecureSkipVerify is true",
    ),
    (
        "insecureSkipVerify simple with SAN",
        TP + "{tls: {mode: SIMPLE, subjectAltNames: [a.b], insecureSkipVerify: true}}",
        "spec.trafficPolicy.tls.insecureSkipVerify",
        "when insecureSkipVerify is true",
    ),
    (
        "insecureSkipVerify mutual with CA",
        TP + "{tls: {mode: MUTUAL, caCertificates: ca, privateKey: k, clientCertificate: c, "
        "insecureSkipVerify: true}}",
        "spec.trafficPolicy.tls.insecureSkipVerify",
        "when insecureSkipVerify is true",
    ),
    (
        "credentialName with files",
        TP + "{tls: {mode: SIMPLE, credentialName: c, caCertificates: ca}}",
        "spec.trafficPolicy.tls.credentialName",
        "if credentialName is set",
    ),
    (
        "mutual without client certificate",
        TP + "{tls: {mode: MUTUAL, privateKey: k}}",
        "spec.trafficPolicy.tls.clientCertificate",
        "client certificate required",
    ),
    (
        "mutual without private key",
        TP + "{tls: {mode: MUTUAL, clientCertificate: c}}",
        "spec.trafficPolicy.tls.privateKey",
        "private key required",
    ),
    (
        "configmap credential in another namespace",
        TP + "{tls: {mode: SIMPLE, credentialName: configmap://other/ca}}",
        "spec.trafficPolicy.tls.credentialName",
        'must match the configuration namespace "ns5"',
    ),
    (
        "configmap credential without namespace",
        TP + "{tls: {mode: SIMPLE, credentialName: configmap://ca}}",
        "spec.trafficPolicy.tls.credentialName",
        "expected namespace/name",
    ),
    (
        "tunnel with proxy protocol",
        TP + "{tunnel: {targetHost: a.b, targetPort: 80}, proxyProtocol: {version: V1}}",
        "spec.trafficPolicy",
        "tunnel and proxyProtocol",
    ),
    (
        "tunnel bad protocol",
        TP + "{tunnel: {protocol: PUT, targetHost: a.b, targetPort: 80}}",
        "spec.trafficPolicy.tunnel.protocol",
        '"CONNECT" or "POST"',
    ),
    (
        "tunnel bad host",
        TP + "{tunnel: {targetHost: 'a b', targetPort: 80}}",
        "spec.trafficPolicy.tunnel.targetHost",
        "valid FQDN or IP address",
    ),
    (
        "tunnel bad port",
        TP + "{tunnel: {targetHost: a.b, targetPort: 0}}",
        "spec.trafficPolicy.tunnel.targetPort",
        "tunnel target port is invalid",
    ),
    (
        "retry budget percent",
        TP + "{retryBudget: {percent: 120}}",
        "spec.trafficPolicy.retryBudget.percent",
        "between 0 and 100",
    ),
    (
        "selector with wildcard",
        "host: r\nworkloadSelector: {matchLabels: {app: '*'}}",
        "spec.workloadSelector.matchLabels.app",
        "wildcard is not supported in selector",
    ),
    (
        "selector exported everywhere",
        "host: r\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: ['*']",
        "spec.exportTo",
        "cannot have exportTo beyond current namespace",
    ),
    (
        "selector exported elsewhere",
        "host: r\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: [somens]",
        "spec.exportTo",
        "cannot have exportTo beyond current namespace",
    ),
    (
        "selector exported to two namespaces",
        "host: r\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: [., somens]",
        "spec.exportTo",
        "cannot have multiple entries in exportTo",
    ),
    ("exportTo none", "host: r\nexportTo: ['~', ns1]", "spec.exportTo[0]", "not allowed"),
    (
        "exportTo dot and star",
        "host: r\nexportTo: [., '*']",
        "spec.exportTo",
        "both public (*) and non-public",
    ),
    (
        "exportTo dot and own namespace",
        "host: r\nexportTo: [., ns5]",
        "spec.exportTo[1]",
        "duplicate entries",
    ),
    ("exportTo duplicates", "host: r\nexportTo: [ns1, ns2, ns1]", "spec.exportTo[2]", "duplicate entries"),
    ("exportTo bad name", "host: r\nexportTo: [ns1_]", "spec.exportTo[0]", "DNS 1123 label"),
]


@pytest.mark.parametrize(("spec", "path", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid(spec: str, path: str, fragment: str) -> None:
    errors = _errors(spec)
    assert any(p == path and fragment in m for p, m in errors), errors


WARNINGS = [
    (
        "selector without labels",
        "host: r\nworkloadSelector: {}",
        "spec.workloadSelector.matchLabels",
        "without labels",
    ),
    (
        "deprecated consecutive errors",
        TP + "{outlierDetection: {consecutiveErrors: 101}}",
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "deprecated",
    ),
    (
        "deprecated ring size",
        TP + "{loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize",
        "deprecated",
    ),
    (
        "failover without outlier detection",
        TP + "{loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}}",
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "outlier detection policy must be provided for failover",
    ),
    (
        "consistent hash without key",
        TP + "{loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 64}}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "no hash key",
    ),
    (
        "istio mutual with a client certificate",
        TP + "{tls: {mode: ISTIO_MUTUAL, clientCertificate: cert.pem, sni: r.example.com}}",
        "spec.trafficPolicy.tls.clientCertificate",
        "ignored when mode is ISTIO_MUTUAL",
    ),
    (
        "duplicate port level settings",
        TP + "{portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}, "
        "{port: {number: 80}, loadBalancer: {simple: LEAST_REQUEST}}]}",
        "spec.trafficPolicy.portLevelSettings[1].port.number",
        "only the first entry applies",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in WARNINGS], ids=[c[0] for c in WARNINGS]
)
def test_warnings(spec: str, path: str, fragment: str) -> None:
    assert _errors(spec) == []
    warnings = _warnings(spec)
    assert any(p == path and fragment in m for p, m in warnings), warnings


def test_every_problem_is_reported() -> None:
    errors = _errors(
        """
        host: 'a..b'
        subsets: [{name: ''}, {name: x, trafficPolicy: {}}]
        trafficPolicy: {outlierDetection: {maxEjectionPercent: 200, minHealthPercent: -5}}
        """
    )
    assert [p for p, _ in errors] == [
        "spec.host",
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "spec.trafficPolicy.outlierDetection.minHealthPercent",
        "spec.subsets[0].name",
        "spec.subsets[1].trafficPolicy",
    ]


def test_finding_points_at_the_line() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: r}
        spec:
          host: r
          trafficPolicy:
            loadBalancer:
              warmup:
                duration: 10s
                aggression: -1
        """
    )
    [issue] = [i for i in parse_yaml(text).issues if i.is_error]
    assert issue.line == 10
    assert "DestinationRule default/r: spec.trafficPolicy.loadBalancer.warmup.aggression:" in str(issue)


def _corpus_docs(path: Path) -> list[tuple[str, str]]:
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            err = doc.pop("_err", "")
            out.append((str(err), yaml.safe_dump(doc)))
    return out


@pytest.mark.parametrize("repo", ["istio-istio", "istio-api"])
def test_corpus_invalid_documents_are_rejected(corpus: Path, repo: str) -> None:
    docs = _corpus_docs(corpus / "validation-crd-testdata" / repo / "destinationrule-invalid.yaml")
    assert docs
    for expected, text in docs:
        errors = parse_yaml(text).errors
        assert errors, expected
        # The corpus text is Kubernetes' "path: Invalid value" or "path: Required value": same field here.
        field, _, phrase = expected.partition(": ")
        assert any(e.path == field and phrase.lower() in e.message.lower() for e in errors), (
            expected,
            errors,
        )


@pytest.mark.parametrize("repo", ["istio-istio", "istio-api"])
def test_corpus_valid_file_loads(corpus: Path, repo: str) -> None:
    path = corpus / "validation-crd-testdata" / repo / "destinationrule-valid.yaml"
    assert parse_yaml(path.read_text(), file=str(path)).errors == ()
