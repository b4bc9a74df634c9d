"""Clusters: circuit breakers (requests, pending, retries, retry budget), picking with outlier detection,
endpoint updates, and the DestinationRule fields that feed them (through ``effective_policy``)."""

from __future__ import annotations

import random
import textwrap
import threading
from collections import Counter

import pytest

from libmesh.config import load_yaml
from libmesh.config.resources import DestinationRule
from libmesh.discovery.endpoint import Endpoint
from libmesh.policy.cluster import Cluster, Limits
from libmesh.policy.outcome import Outcome
from libmesh.routing.policy import (
    ConcurrentRetryBudget,
    EffectivePolicy,
    OutlierSettings,
    PoolSettings,
    WarmupSettings,
    effective_policy,
)


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def eps(n: int) -> list[Endpoint]:
    return [Endpoint(f"10.0.0.{i + 1}", 9080) for i in range(n)]


def policy_of(traffic_policy_yaml: str) -> EffectivePolicy:
    text = f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: d, namespace: default}}
spec:
  host: reviews
  trafficPolicy:
{textwrap.indent(textwrap.dedent(traffic_policy_yaml).strip(), "    ")}
"""
    (dr,) = load_yaml(text).of_kind(DestinationRule)
    return effective_policy(dr.spec.traffic_policy)


def cluster(policy: EffectivePolicy | None = None, n: int = 3, clock: FakeClock | None = None) -> Cluster:
    return Cluster(
        "outbound|9080||reviews",
        policy or EffectivePolicy(),
        eps(n),
        clock=clock or FakeClock(),
        rand=random.Random(7),
    )


# --- DestinationRule -> policy ----------------------------------------------------------------------------


def test_connection_pool_limits_follow_istio() -> None:
    p = policy_of(
        """
        connectionPool:
          tcp: {maxConnections: 2}
          http: {http1MaxPendingRequests: 1, http2MaxRequests: 5, maxRetries: 4}
        """
    )
    assert Limits.from_policy(p) == Limits(max_requests=5, max_connections=2, max_pending=1, max_retries=4)
    assert Limits.from_policy(EffectivePolicy()) == Limits()  # Istio sends 2^32-1 everywhere
    zeros = EffectivePolicy(pool=PoolSettings(max_connections=0, http2_max_requests=0, max_retries=0))
    assert Limits.from_policy(zeros) == Limits()  # Istio ignores 0 (it cannot tell it from unset)


def test_retry_budget_defaults() -> None:
    assert policy_of("retryBudget: {}").retry_budget == ConcurrentRetryBudget(20.0, 3, 0.0)
    p = policy_of("retryBudget: {percent: 50, minRetryConcurrency: 1, budgetInterval: 10s}")
    assert p.retry_budget == ConcurrentRetryBudget(50.0, 1, 10.0)
    assert effective_policy(None).retry_budget is None


def test_outlier_settings_follow_istio() -> None:
    p = policy_of("outlierDetection: {maxEjectionPercent: 0, outlierDetectionHttpErrorCodes: [500, 429]}")
    assert p.outlier == OutlierSettings(max_ejection_percent=10, error_codes=frozenset({500, 429}))
    p = policy_of(
        "outlierDetection: {maxEjectionPercent: 100, minHealthPercent: 50, consecutiveGatewayErrors: 2}"
    )
    assert p.outlier is not None
    assert (p.outlier.max_ejection_percent, p.outlier.min_health_percent) == (100, 50)
    assert (p.outlier.consecutive_gateway_errors, p.outlier.consecutive_5xx) == (2, 5)


@pytest.mark.parametrize(
    ("lb", "expected"),
    [
        ("{simple: ROUND_ROBIN, warmup: {duration: 30s}}", WarmupSettings(30.0, 10.0, 1.0)),
        ("{warmup: {duration: 1m, minimumPercent: 5, aggression: 2}}", WarmupSettings(60.0, 5.0, 2.0)),
        ("{simple: LEAST_REQUEST, warmupDurationSecs: 15s}", WarmupSettings(15.0)),
        ("{simple: RANDOM, warmup: {duration: 30s}}", None),  # Istio configures slow start on RR/LR only
        ("{simple: ROUND_ROBIN}", None),
    ],
)
def test_warmup_settings(lb: str, expected: WarmupSettings | None) -> None:
    assert policy_of(f"loadBalancer: {lb}").warmup == expected


# --- circuit breakers -------------------------------------------------------------------------------------


def test_http2_max_requests_caps_requests_in_flight() -> None:
    c = cluster(EffectivePolicy(pool=PoolSettings(http2_max_requests=1)))
    assert c.acquire_request()
    assert [c.acquire_request() for _ in range(9)] == [False] * 9  # nine overflow at once (UO)
    c.release_request()
    assert c.acquire_request()
    assert c.stats().requests_overflowed == 9


def test_start_request_takes_the_slot_and_counts_the_endpoint_in_one_step() -> None:
    clock = FakeClock()
    p = EffectivePolicy(
        pool=PoolSettings(http2_max_requests=1),
        outlier=OutlierSettings(consecutive_5xx=1, max_ejection_percent=100),
    )
    c = cluster(p, clock=clock)
    first, second = c.endpoints[0], c.endpoints[1]
    assert c.start_request(first)
    # Refused at the limit: nothing is counted on the endpoint it was picked for.
    assert not c.start_request(second)
    stats = c.stats()
    assert (stats.active_requests, stats.active_by_endpoint, stats.requests_overflowed) == (
        1,
        {first.key: 1},
        1,
    )
    c.end_request(first, Outcome(status=503))
    stats = c.stats()
    assert (stats.active_requests, stats.active_by_endpoint, list(stats.ejected)) == (0, {}, [first.key])
    # A passthrough attempt takes a slot on no endpoint; an attempt that ends without an outcome tells
    # outlier detection nothing.
    assert c.start_request(None)
    c.end_request(None, None)
    assert c.start_request(second)
    c.end_request(second, None)
    stats = c.stats()
    assert (stats.active_requests, stats.active_by_endpoint, list(stats.ejected)) == (0, {}, [first.key])


def test_pending_requests_count_beyond_max_connections() -> None:
    c = cluster(EffectivePolicy(pool=PoolSettings(max_connections=2, http1_max_pending_requests=1)))
    assert [c.acquire_request() for _ in range(4)] == [True, True, True, False]
    s = c.stats()
    assert (s.active_requests, s.pending_requests, s.pending_overflowed) == (3, 1, 1)
    c.release_request()
    assert c.acquire_request()


def test_max_connections_alone_does_not_refuse_requests() -> None:
    c = cluster(EffectivePolicy(pool=PoolSettings(max_connections=1)))
    assert all(c.acquire_request() for _ in range(100))
    assert c.stats().pending_requests == 99


def test_defaults_are_unlimited() -> None:
    c = cluster()
    assert all(c.acquire_request() for _ in range(1000))
    assert all(c.acquire_retry() for _ in range(1000))
    assert c.retry_limit() is None


def test_max_retries_caps_retries_in_flight() -> None:
    c = cluster(EffectivePolicy(pool=PoolSettings(max_retries=2)))
    assert [c.acquire_retry() for _ in range(3)] == [True, True, False]
    c.release_retry()
    assert c.acquire_retry()
    assert c.stats().retries_overflowed == 1


def test_releases_never_go_negative() -> None:
    c = cluster()
    c.release_request()
    c.release_retry()
    assert (c.active_requests, c.active_retries) == (0, 0)


def test_retry_budget_scales_with_active_requests() -> None:
    budget = ConcurrentRetryBudget(percent=20.0, min_retry_concurrency=3)
    c = cluster(EffectivePolicy(pool=PoolSettings(max_retries=1), retry_budget=budget))
    assert c.retry_limit() == 3  # the minimum; the budget replaces maxRetries
    for _ in range(25):
        c.acquire_request()
    assert c.retry_limit() == 5  # 20 % of 25
    assert [c.acquire_retry() for _ in range(6)] == [True] * 5 + [False]
    for _ in range(24):
        c.release_request()
    assert not c.acquire_retry()  # 5 in flight, limit back to 3
    for _ in range(3):
        c.release_retry()
    assert c.acquire_retry()


def test_retry_budget_interval_counts_recent_requests() -> None:
    clock = FakeClock()
    budget = ConcurrentRetryBudget(percent=50.0, min_retry_concurrency=1, budget_interval=10.0)
    c = cluster(EffectivePolicy(retry_budget=budget), clock=clock)
    for _ in range(10):
        c.acquire_request()
        c.release_request()
    assert c.retry_limit() == 5  # nothing in flight, but 10 started within the last 10 s
    clock.t += 5.0
    assert c.retry_limit() == 5
    clock.t += 6.0
    assert c.retry_limit() == 1


# --- picking ----------------------------------------------------------------------------------------------


def test_least_request_sees_the_attempts_in_flight() -> None:
    c = cluster(n=2)
    e = c.endpoints
    busy = [c.attempt(e[0]) for _ in range(5)]
    for a in busy:
        a.__enter__()
    picks = Counter(p.key for p in (c.pick() for _ in range(400)) if p is not None)
    assert picks[e[0].key] <= 140  # picked only when both choices land on it (a quarter)
    for a in busy:
        a.__exit__(None, None, None)
    assert c.stats().active_by_endpoint == {}


def test_attempts_feed_outlier_detection_and_ejected_endpoints_are_not_picked() -> None:
    clock = FakeClock()
    p = EffectivePolicy(outlier=OutlierSettings(max_ejection_percent=34, base_ejection_time=30.0))
    c = cluster(p, clock=clock)
    bad = c.endpoints[0]
    for _ in range(5):
        with c.attempt(bad) as a:
            a.outcome = Outcome(status=503)
    assert list(c.stats().ejected) == [bad.key]
    assert all(c.pick() is not bad for _ in range(200))
    clock.t += 40.0
    assert any(c.pick() is bad for _ in range(200))


def test_an_attempt_without_outcome_is_not_held_against_the_endpoint() -> None:
    c = cluster(EffectivePolicy(outlier=OutlierSettings(consecutive_5xx=1, max_ejection_percent=100)))
    with pytest.raises(RuntimeError), c.attempt(c.endpoints[0]):
        raise RuntimeError("caller went away")
    assert c.stats().ejected == {} and c.stats().active_by_endpoint == {}


def test_all_ejected_means_no_healthy_upstream() -> None:
    c = cluster(EffectivePolicy(outlier=OutlierSettings(consecutive_5xx=1, max_ejection_percent=100)))
    for ep in c.endpoints:
        c.finish(ep, Outcome(status=500))
    assert c.pick() is None and not c.passthrough  # 503 UH
    assert c.stats().healthy == 0


def test_no_endpoints_means_no_healthy_upstream() -> None:
    assert cluster(n=0).pick() is None


def test_passthrough_cluster_makes_no_choice() -> None:
    c = cluster(EffectivePolicy(load_balancer="PASSTHROUGH"))
    assert c.passthrough and c.pick() is None


def test_retries_avoid_tried_endpoints() -> None:
    c = cluster(EffectivePolicy(load_balancer="ROUND_ROBIN"))
    tried = {c.endpoints[0].key, c.endpoints[1].key}
    assert all(c.pick(exclude=tried) is c.endpoints[2] for _ in range(20))


def test_update_replaces_endpoints_and_keeps_active_counts() -> None:
    c = cluster(n=2)
    old = c.endpoints
    c.start(old[0])
    new = [old[0], Endpoint("10.0.0.9", 9080)]
    c.update(new)
    assert c.endpoints == tuple(new)
    assert {p.key for p in (c.pick() for _ in range(100)) if p is not None} == {e.key for e in new}
    assert c.stats().active_by_endpoint == {old[0].key: 1}
    c.finish(old[0], Outcome(status=200))
    assert c.stats().active_by_endpoint == {}


def test_stats_for_a_status_page() -> None:
    c = cluster(EffectivePolicy(load_balancer="RANDOM", pool=PoolSettings(http2_max_requests=10)))
    c.acquire_request()
    c.start(c.endpoints[1])
    d = c.stats().as_dict()
    assert d["name"] == "outbound|9080||reviews" and d["load_balancer"] == "RANDOM"
    assert d["endpoints"] == [e.key for e in c.endpoints] and d["healthy"] == 3
    assert d["active_requests"] == 1 and d["active_by_endpoint"] == {c.endpoints[1].key: 1}
    assert d["limits"]["max_requests"] == 10 and d["limits"]["retry_budget"] is None
    assert d["ejected"] == {} and d["panic"] is False


# --- end to end on a fake clock ---------------------------------------------------------------------------


def test_failing_endpoint_is_ejected_and_retries_keep_calls_succeeding() -> None:
    clock = FakeClock()
    p = EffectivePolicy(outlier=OutlierSettings(max_ejection_percent=100))
    c = cluster(p, clock=clock)
    bad = c.endpoints[0].key
    ok = sent_to_bad = 0
    for _ in range(3000):
        clock.t += 0.01
        tried: set[str] = set()
        for _ in range(3):  # one attempt and two retries
            assert c.acquire_request()
            try:
                ep = c.pick(exclude=tried)
                assert ep is not None
                tried.add(ep.key)
                with c.attempt(ep) as a:
                    a.outcome = Outcome(status=503 if ep.key == bad else 200)
                sent_to_bad += ep.key == bad
            finally:
                c.release_request()
            if a.outcome.status == 200:
                ok += 1
                break
    assert ok >= 0.999 * 3000
    # 5 errors eject it for 30 s, then 60 s, ...: over 30 s of traffic it sees only a handful of requests.
    assert sent_to_bad <= 20


def test_cluster_is_thread_safe() -> None:
    c = cluster(EffectivePolicy(pool=PoolSettings(http2_max_requests=8, max_retries=4)))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(2000):
                if c.acquire_request():
                    ep = c.pick()
                    assert ep is not None
                    with c.attempt(ep) as a:
                        a.outcome = Outcome(status=200)
                    if c.acquire_retry():
                        c.release_retry()
                    c.release_request()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = c.stats()
    assert (s.active_requests, s.active_retries, s.active_by_endpoint) == (0, 0, {})
