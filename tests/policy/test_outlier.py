"""Outlier detection on a fake clock: consecutive-error detectors, ejection time growth and decay, the
maxEjectionPercent cap, interval ticks, panic mode and the all-ejected (503 UH) signal."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from libmesh.discovery.endpoint import Endpoint
from libmesh.policy.outcome import Failure, Outcome
from libmesh.policy.outlier import OutlierDetector
from libmesh.routing.policy import OutlierSettings

OK = Outcome(status=200)
E500 = Outcome(status=500)
E503 = Outcome(status=503)
CONNECT = Outcome(failure=Failure.CONNECT)


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def eps(n: int) -> list[Endpoint]:
    return [Endpoint(f"10.0.0.{i + 1}", 80) for i in range(n)]


def detector(
    n: int = 3, clock: FakeClock | None = None, **settings: object
) -> tuple[OutlierDetector, list[Endpoint], FakeClock]:
    clock = clock or FakeClock()
    settings.setdefault("max_ejection_percent", 100)
    e = eps(n)
    return OutlierDetector(OutlierSettings(**settings), clock, e), e, clock  # type: ignore[arg-type]


def fail(d: OutlierDetector, ep: Endpoint, times: int, outcome: Outcome = E503) -> list[bool]:
    return [d.record(ep.key, outcome) for _ in range(times)]


def keys(endpoints: Sequence[Endpoint]) -> list[str]:
    return [e.key for e in endpoints]


# --- detectors --------------------------------------------------------------------------------------------


def test_five_consecutive_5xx_eject_by_default() -> None:
    d, e, _ = detector()
    assert fail(d, e[0], 5) == [False] * 4 + [True]
    assert d.is_ejected(e[0].key)
    assert keys(d.healthy(e)) == keys(e[1:])


def test_a_success_resets_the_count() -> None:
    d, e, _ = detector()
    fail(d, e[0], 4)
    d.record(e[0].key, OK)
    assert fail(d, e[0], 4) == [False] * 4
    assert not d.is_ejected(e[0].key)


@pytest.mark.parametrize(
    ("outcome", "counts"),
    [
        (Outcome(status=500), True),
        (Outcome(status=503), True),
        (Outcome(failure=Failure.TIMEOUT), True),
        (Outcome(status=404), False),
        # gRPC errors travel in a 200; Envoy judges them by the HTTP status their code maps to.
        (Outcome(status=200, grpc_status=14), True),  # UNAVAILABLE -> 503
        (Outcome(status=200, grpc_status=5), False),  # NOT_FOUND -> 404
    ],
)
def test_what_counts_as_a_5xx(outcome: Outcome, counts: bool) -> None:
    d, e, _ = detector(consecutive_5xx=2)
    fail(d, e[0], 2, outcome)
    assert d.is_ejected(e[0].key) is counts


def test_gateway_error_detector_ignores_plain_500s() -> None:
    d, e, _ = detector(consecutive_5xx=0, consecutive_gateway_errors=3)
    for o in (E503, Outcome(status=502), E500, CONNECT, Outcome(status=504)):
        d.record(e[0].key, o)
    assert not d.is_ejected(e[0].key)  # the 500 broke the run of gateway errors
    assert d.record(e[0].key, Outcome(failure=Failure.RESET))
    assert d.is_ejected(e[0].key)


def test_the_5xx_detector_counts_gateway_errors_too() -> None:
    d, e, _ = detector(consecutive_5xx=3, consecutive_gateway_errors=0)
    for o in (E500, E503, CONNECT):
        d.record(e[0].key, o)
    assert d.is_ejected(e[0].key)


def test_threshold_zero_disables_a_detector() -> None:
    d, e, _ = detector(consecutive_5xx=0, consecutive_gateway_errors=0)
    fail(d, e[0], 50)
    assert d.ejected() == {}


def test_error_codes_decide_which_statuses_are_errors() -> None:
    d, e, _ = detector(consecutive_5xx=2, error_codes=frozenset({429}))
    fail(d, e[0], 3, E503)
    assert not d.is_ejected(e[0].key)  # 503 is not listed: a success
    fail(d, e[0], 2, Outcome(status=429))
    assert d.is_ejected(e[0].key)
    fail(d, e[1], 2, CONNECT)  # transport failures still count
    assert d.is_ejected(e[1].key)


def test_error_codes_judge_a_grpc_status_by_the_http_status_it_maps_to() -> None:
    d, e, _ = detector(consecutive_5xx=2, max_ejection_percent=100, error_codes=frozenset({503}))
    fail(d, e[0], 2, Outcome(status=200, grpc_status=14))  # UNAVAILABLE -> 503, listed
    assert d.is_ejected(e[0].key)
    fail(d, e[1], 3, Outcome(status=200, grpc_status=13))  # INTERNAL -> 500, not listed
    assert not d.is_ejected(e[1].key)


# --- ejection time, interval ticks and decay --------------------------------------------------------------


def test_ejected_endpoints_return_on_the_first_tick_after_their_time() -> None:
    d, e, clock = detector(interval=10.0, base_ejection_time=30.0)
    clock.t = 1.0
    fail(d, e[0], 5)
    assert d.ejected() == {e[0].key: 40.0}  # ticks at 10, 20, 30, 40: 31 is not a tick
    clock.t = 39.9
    assert e[0] not in d.healthy(e)
    clock.t = 40.0
    assert d.healthy(e) == e and d.ejected() == {}


def test_ejection_time_grows_with_each_ejection() -> None:
    d, e, clock = detector(interval=1.0, base_ejection_time=10.0)
    back_at = []
    for _ in range(3):
        fail(d, e[0], 5)
        (until,) = d.ejected().values()
        back_at.append(until - clock.t)
        clock.t = until
        assert not d.is_ejected(e[0].key)
    assert back_at == [10.0, 20.0, 30.0]
    assert d.multiplier(e[0].key) == 3


def test_ejection_time_is_capped_at_300_seconds() -> None:
    d, e, clock = detector(interval=1.0, base_ejection_time=100.0)
    for _ in range(5):
        fail(d, e[0], 5)
        (until,) = d.ejected().values()
        last = until - clock.t
        clock.t = until
    assert last == 300.0
    assert d.multiplier(e[0].key) == 4  # Envoy stops growing it once base * multiplier passes the cap


def test_the_multiplier_decays_while_the_endpoint_stays_healthy() -> None:
    d, e, clock = detector(interval=10.0, base_ejection_time=10.0)
    for _ in range(3):
        fail(d, e[0], 5)
        clock.t = d.ejected()[e[0].key]
    returned = clock.t
    assert d.multiplier(e[0].key) == 3
    clock.t = returned + 9.0
    assert d.multiplier(e[0].key) == 3  # not a full interval healthy yet
    clock.t = returned + 10.0
    assert d.multiplier(e[0].key) == 2
    clock.t = returned + 25.0
    assert d.multiplier(e[0].key) == 1
    clock.t = returned + 1000.0
    assert d.multiplier(e[0].key) == 0
    fail(d, e[0], 5)
    assert d.ejected()[e[0].key] - clock.t <= 10.0


def test_counters_restart_after_returning() -> None:
    d, e, clock = detector(interval=1.0, base_ejection_time=1.0, consecutive_5xx=3)
    fail(d, e[0], 3)
    clock.t = 5.0
    assert d.healthy(e) == e
    assert fail(d, e[0], 3) == [False, False, True]


def test_long_idle_periods_replay_only_the_ticks_that_matter() -> None:
    # A 1 ms interval over a day would be 86 million ticks; only the few that change something are replayed.
    d, e, clock = detector(interval=0.001, base_ejection_time=30.0)
    fail(d, e[0], 5)
    clock.t = 86_400.0
    assert d.healthy(e) == e and d.multiplier(e[0].key) == 0


# --- the maxEjectionPercent cap ---------------------------------------------------------------------------


def test_max_ejection_percent_uses_envoys_rule() -> None:
    d, e, _ = detector(n=3, max_ejection_percent=10)
    fail(d, e[0], 5)
    assert d.ejected() == {}  # 1 of 3 is 33 % > 10 %: Envoy ejects nothing (Istio's default!)
    d, e, _ = detector(n=3, max_ejection_percent=34)
    fail(d, e[0], 5)
    fail(d, e[1], 5)
    assert list(d.ejected()) == [e[0].key]
    d, e, _ = detector(n=10, max_ejection_percent=20)
    for ep in e[:5]:
        fail(d, ep, 5)
    assert len(d.ejected()) == 2


def test_a_refused_ejection_still_resets_the_counter() -> None:
    d, e, _ = detector(n=2, max_ejection_percent=50)
    fail(d, e[0], 5)
    assert fail(d, e[1], 5) == [False] * 5  # the cap is reached
    assert fail(d, e[1], 4) == [False] * 4  # counting started over after the refused ejection


# --- panic and no healthy upstream ------------------------------------------------------------------------


def test_every_endpoint_ejected_leaves_no_healthy_upstream() -> None:
    d, e, _ = detector(n=2, max_ejection_percent=100, min_health_percent=0)
    for ep in e:
        fail(d, ep, 5)
    assert list(d.healthy(e)) == [] and not d.panic


def test_min_health_percent_puts_the_balancer_in_panic() -> None:
    d, e, _ = detector(n=3, min_health_percent=50)
    fail(d, e[0], 5)
    assert keys(d.healthy(e)) == keys(e[1:]) and not d.panic  # 67 % healthy
    fail(d, e[1], 5)
    assert d.healthy(e) == e and d.panic  # 33 % < 50 %: all endpoints are used again
    fail(d, e[2], 5)
    assert d.healthy(e) == e and d.panic


def test_panic_waits_until_overprovisioning_cannot_cover_the_load() -> None:
    d, e, _ = detector(n=10, min_health_percent=95)
    fail(d, e[0], 5)
    assert len(d.healthy(e)) == 9 and not d.panic  # 90 % healthy * 1.4 covers the load
    for ep in e[1:4]:
        fail(d, ep, 5)
    assert d.healthy(e) == e and d.panic  # 60 % * 1.4 < 100 %


# --- host set and caching ---------------------------------------------------------------------------------


def test_healthy_is_cheap_when_nothing_changes() -> None:
    d, e, _ = detector()
    assert d.healthy(e) is e
    fail(d, e[0], 5)
    first = d.healthy(e)
    assert d.healthy(e) is first


def test_host_set_follows_the_endpoints() -> None:
    d, e, _ = detector(n=2)
    fail(d, e[0], 5)
    new = Endpoint("10.9.9.9", 80)
    assert keys(d.healthy([e[1], new])) == keys([e[1], new])  # the ejected endpoint left the set
    assert not d.record(e[0].key, E503)  # results for removed endpoints are ignored
    assert keys(d.healthy(e)) == keys(e)  # it comes back clean
    d.update([*e, new])
    assert fail(d, new, 5)[-1]


def test_detector_without_hosts_ignores_results() -> None:
    d = OutlierDetector(OutlierSettings(), FakeClock())
    assert not d.record("10.0.0.1:80", E503)
    assert list(d.healthy([])) == []


def test_detector_is_thread_safe() -> None:
    d, e, clock = detector(n=4, interval=0.5, base_ejection_time=1.0, max_ejection_percent=50)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(3000):
                ep = e[(i + j) % 4]
                d.record(ep.key, E503 if j % 3 else OK)
                assert len(d.healthy(e)) >= 2
                clock.t += 0.001
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(d.ejected()) <= 2
