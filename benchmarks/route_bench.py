"""Benchmarks for the routing snapshot: per-call route decisions and compiling a large config.

Rows (bars and goals are the issue's acceptance numbers, medians):

* ``route.vs50_last``   a 50-route VirtualService whose last route matches; each route has a uri prefix and
  a header match, as a real per-tenant table would. Bar 10 us, goal 5 us.
* ``route.vs50_worst``  the same, but every route's prefix matches so each header test runs too (no bar).
* ``route.vs1``         a one-route VirtualService. Bar 2 us.
* ``route.default``     a host no VirtualService covers (the default route). No bar.
* ``compile.2000``      ``Snapshot.compile`` of 1,000 VirtualServices + 1,000 DestinationRules already in an
  in-memory ``ConfigSet``. Bar 1 s, goal 0.5 s.
* ``compile.4000``      the same with twice as many of each, read against ``compile.2000``: 2.0x means
  compiling scales linearly with the config.
* ``load.resources``    validating the same objects with ``load_resources`` (no bar).
* ``load.yaml``         the same config as YAML text through ``load_yaml`` (parse + validate, no bar).
* ``base.*``            plain-Python baselines doing the same logical work (a dict lookup plus a loop of
  ``str.startswith`` and header compares of the same length) on the same ``Call`` objects, so the numbers read
  as ratios on a noisy shared machine.

Run alone with ``python -m benchmarks.route_bench``; ``python -m benchmarks.run`` prints them with the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from libmesh.config import (
    ConfigSet,
    ConnectionPoolSettings,
    Destination,
    DestinationRule,
    DestinationRuleSpec,
    HTTPMatchRequest,
    HTTPRetry,
    HTTPRoute,
    HTTPRouteDestination,
    HTTPSettings,
    LoadBalancerSettings,
    ObjectMeta,
    Resource,
    SimpleLB,
    StringMatch,
    Subset,
    TrafficPolicy,
    VirtualService,
    VirtualServiceSpec,
    dump_yaml,
    load_resources,
    load_yaml,
)
from libmesh.routing.call import Call
from libmesh.routing.decision import Action, RouteDecision
from libmesh.routing.snapshot import Snapshot

from . import Result, time_calls, time_runs

__all__ = ["bookinfo_like_config", "large_config", "run"]

US = 1e-6
NAMESPACE = "default"
ROUTES = 50
LARGE = 1000


# --- configs ---------------------------------------------------------------------------------------------


def _meta(name: str) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=NAMESPACE)


def _to(host: str, subset: str | None = None, weight: int | None = None) -> HTTPRouteDestination:
    return HTTPRouteDestination(destination=Destination(host=host, subset=subset), weight=weight)


def _tenant_route(i: int, prefix: str) -> HTTPRoute:
    return HTTPRoute(
        name=f"tenant-{i:02d}",
        match=(
            HTTPMatchRequest(
                uri=StringMatch(prefix=prefix), headers={"x-tenant": StringMatch(exact=f"t{i:02d}")}
            ),
        ),
        route=(_to("reviews", f"v{i % 3 + 1}"),),
    )


def _subsets(n: int) -> tuple[Subset, ...]:
    return tuple(Subset(name=f"v{k}", labels={"version": f"v{k}"}) for k in range(1, n + 1))


def bookinfo_like_config() -> ConfigSet:
    """The per-call benchmark config: ``reviews`` (50 tenant routes), ``reviews-shared`` (50 routes sharing
    one prefix), ``ratings`` (one route), DestinationRules for both, and nothing for ``details``."""
    tenants = tuple(_tenant_route(i, f"/api/v1/shard{i:02d}/") for i in range(ROUTES))
    shared = tuple(_tenant_route(i, "/api/") for i in range(ROUTES))
    resources: list[Resource] = [
        VirtualService(metadata=_meta("reviews"), spec=VirtualServiceSpec(hosts=("reviews",), http=tenants)),
        VirtualService(
            metadata=_meta("reviews-shared"), spec=VirtualServiceSpec(hosts=("reviews-shared",), http=shared)
        ),
        VirtualService(
            metadata=_meta("ratings"),
            spec=VirtualServiceSpec(hosts=("ratings",), http=(HTTPRoute(route=(_to("ratings", "v1"),)),)),
        ),
        DestinationRule(
            metadata=_meta("reviews"), spec=DestinationRuleSpec(host="reviews", subsets=_subsets(3))
        ),
        DestinationRule(
            metadata=_meta("ratings"), spec=DestinationRuleSpec(host="ratings", subsets=_subsets(1))
        ),
    ]
    return load_resources(resources, namespace=NAMESPACE)


def large_config(n: int = LARGE) -> list[Resource]:
    """``n`` VirtualServices and ``n`` DestinationRules for distinct hosts ``svc-0000``..: each service has a
    header-matched canary route, a prefix route with timeout and retries, and a 90/10 weighted default; each
    rule has a pool and load-balancer policy and three subsets."""
    out: list[Resource] = []
    policy = TrafficPolicy(
        connection_pool=ConnectionPoolSettings(http=HTTPSettings(http1_max_pending_requests=64)),
        load_balancer=LoadBalancerSettings(simple=SimpleLB.LEAST_REQUEST),
    )
    for i in range(n):
        host = f"svc-{i:04d}"
        http = (
            HTTPRoute(
                name="canary",
                match=(HTTPMatchRequest(headers={"end-user": StringMatch(exact="jason")}),),
                route=(_to(host, "v3"),),
            ),
            HTTPRoute(
                name="api",
                match=(HTTPMatchRequest(uri=StringMatch(prefix="/api/")),),
                route=(_to(host, "v2"),),
                timeout=timedelta(seconds=5),
                retries=HTTPRetry(
                    attempts=3, retry_on="5xx,connect-failure", per_try_timeout=timedelta(seconds=2)
                ),
            ),
            HTTPRoute(name="default", route=(_to(host, "v1", 90), _to(host, "v2", 10))),
        )
        out.append(VirtualService(metadata=_meta(host), spec=VirtualServiceSpec(hosts=(host,), http=http)))
        out.append(
            DestinationRule(
                metadata=_meta(host),
                spec=DestinationRuleSpec(host=host, traffic_policy=policy, subsets=_subsets(3)),
            )
        )
    return out


# --- baselines -------------------------------------------------------------------------------------------


def _baseline(rules: Sequence[tuple[str, str, str]]) -> Callable[[Call], object]:
    """The least plain Python can do for the same decision: one dict lookup, then ``rules`` prefix + header
    tests in order, on the raw ``Call`` fields (no host parsing, no port, no query stripping)."""
    table: Mapping[str, object] = {"reviews:9080": "reviews", "ratings:9080": "ratings"}
    rules = tuple(rules)

    def decide(call: Call) -> object:
        entry = table.get(call.authority)
        path = call.path
        headers = call.headers
        for prefix, name, value in rules:
            if path.startswith(prefix) and headers.get(name) == value:
                return entry
        return entry

    return decide


# --- run -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Case:
    name: str
    label: str
    authority: str
    path: str
    fn: Callable[[Call], object]
    baseline: str | None = None
    bar: float | None = None
    goal: float | None = None


def _calls(case: _Case, headers: Mapping[str, str], n: int) -> Callable[[], list[Call]]:
    return lambda: [Call(authority=case.authority, path=case.path, headers=headers) for _ in range(n)]


def _sizes(case: _Case, headers: Mapping[str, str], quick: bool) -> tuple[int, int]:
    """(batches, batch size) for a case: batches of about 200 us, so that a scheduler preemption spoils few
    samples while the clock's own cost stays under 1 %, and about 0.4 s (0.05 s quick) of timed calls."""
    probe = _calls(case, headers, 200)()
    start = time.perf_counter()
    for call in probe:
        case.fn(call)
    cost = max((time.perf_counter() - start) / len(probe), 1e-8)
    batch = min(1000, max(10, round(200e-6 / cost)))
    budget = 0.05 if quick else 0.4
    return min(4000, max(50, round(budget / (batch * cost)))), batch


def _check(snap: Snapshot, call: Call, route_index: int | None) -> None:
    # A benchmark that routes to the wrong place measures nothing: fail loudly instead.
    d: RouteDecision = snap.route(call)
    if d.action is not Action.ROUTE or d.route_index != route_index:
        raise AssertionError(f"benchmark setup is wrong: {call.authority}{call.path} -> {d}")


def _per_call_results(quick: bool) -> list[Result]:
    snap = Snapshot.compile(bookinfo_like_config(), namespace=NAMESPACE)
    last = ROUTES - 1
    headers = {"x-tenant": f"t{last:02d}", "user-agent": "bench/1.0", "accept": "application/json"}
    path = f"/api/v1/shard{last:02d}/items/7?page=2"
    tenant_rules = [(f"/api/v1/shard{i:02d}/", "x-tenant", f"t{i:02d}") for i in range(ROUTES)]
    shared_rules = [("/api/", "x-tenant", f"t{i:02d}") for i in range(ROUTES)]
    one_rule = [("/", "x-tenant", headers["x-tenant"])]
    cases = [
        _Case("base.dict", "baseline: dict lookup", "ratings:9080", "/", _baseline([])),
        _Case(
            "base.loop1", "baseline: dict + 1 prefix/header test", "ratings:9080", "/", _baseline(one_rule)
        ),
        _Case(
            "base.loop50",
            "baseline: dict + 50 prefix/header tests",
            "reviews:9080",
            path,
            _baseline(tenant_rules),
        ),
        _Case(
            "base.loop50_worst",
            "baseline: dict + 50 tests, all prefixes match",
            "reviews:9080",
            path,
            _baseline(shared_rules),
        ),
        _Case(
            "route.vs50_last",
            "route: 50-route VS, last route matches",
            "reviews:9080",
            path,
            snap.route,
            "base.loop50",
            10 * US,
            5 * US,
        ),
        _Case(
            "route.vs50_worst",
            "route: 50-route VS, every prefix matches",
            "reviews-shared:9080",
            path,
            snap.route,
            "base.loop50_worst",
        ),
        _Case(
            "route.vs1", "route: 1-route VS", "ratings:9080", "/ratings/0", snap.route, "base.loop1", 2 * US
        ),
        _Case(
            "route.default",
            "route: default route (no VS)",
            "details:9080",
            "/details/0",
            snap.route,
            "base.dict",
        ),
    ]
    expected = {"route.vs50_last": last, "route.vs50_worst": last, "route.vs1": 0, "route.default": None}
    results: list[Result] = []
    for case in cases:
        batches, batch = _sizes(case, headers, quick)
        make = _calls(case, headers, batch)
        if case.name in expected:
            _check(snap, make()[0], expected[case.name])
        timing = time_calls(case.fn, make, batches=batches)
        results.append(
            timing.result(case.name, case.label, batch, bar=case.bar, goal=case.goal, baseline=case.baseline)
        )
    return results


def _compile_results(quick: bool) -> list[Result]:
    runs, slow_runs = (2, 1) if quick else (7, 3)
    resources = large_config(LARGE)
    config = load_resources(resources, namespace=NAMESPACE)
    text = dump_yaml(resources)
    if len(load_yaml(text, namespace=NAMESPACE).resources) != len(resources):
        raise AssertionError("benchmark setup is wrong: the YAML round trip lost resources")
    last = Call(authority=f"svc-{LARGE - 1:04d}:80", path="/")
    _check(Snapshot.compile(config, namespace=NAMESPACE), last, 2)
    double = load_resources(large_config(2 * LARGE), namespace=NAMESPACE)
    size = f"{LARGE:,} VS + {LARGE:,} DR"
    results: list[Result] = []

    def measure(
        name: str,
        label: str,
        fn: Callable[[], object],
        n: int,
        bar: float | None = None,
        goal: float | None = None,
        baseline: str | None = None,
        note: str = "",
        warmup: int = 1,
    ) -> None:
        timing = time_runs(fn, runs=n, warmup=warmup)
        results.append(timing.result(name, label, bar=bar, goal=goal, baseline=baseline, note=note))

    measure(
        "compile.2000",
        f"compile: {size} (in-memory ConfigSet)",
        lambda: Snapshot.compile(config, namespace=NAMESPACE),
        runs,
        bar=1.0,
        goal=0.5,
    )
    measure(
        "compile.4000",
        f"compile: {2 * LARGE:,} VS + {2 * LARGE:,} DR (scaling)",
        lambda: Snapshot.compile(double, namespace=NAMESPACE),
        slow_runs,
        baseline="compile.2000",
        note="linear = 2.0x",
        warmup=0,  # a second or more per run; nothing in it needs warming that compile.2000 has not warmed
    )
    measure(
        "load.resources",
        f"validate: {size}, load_resources",
        lambda: load_resources(resources, namespace=NAMESPACE),
        runs,
    )
    measure(
        "load.yaml",
        f"load: {size} as YAML, load_yaml",
        lambda: load_yaml(text, namespace=NAMESPACE),
        slow_runs,
        note=f"{len(text) / 1e6:.1f} MB",
        warmup=0,  # parsed once above already, to check the round trip
    )
    return results


def run(quick: bool = False) -> list[Result]:
    """Run every routing benchmark; ``quick`` takes fewer samples (a smoke test, not a measurement)."""
    return _per_call_results(quick) + _compile_results(quick)


if __name__ == "__main__":
    import sys

    from .run import main

    raise SystemExit(main(["--only", "route_bench", *sys.argv[1:]]))
