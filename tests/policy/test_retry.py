"""The retry decision engine: Envoy's retryOn conditions, back-off, the retry budget and per-call state.

Every test runs on a fake clock and fixed random numbers; nothing sleeps.
"""

from __future__ import annotations

import itertools
import random
import sys
import textwrap
import threading
from datetime import timedelta

import pytest

from libmesh.config import load_yaml
from libmesh.config.resources import RetryBudgetSettings
from libmesh.policy.outcome import Failure, Flag, Outcome
from libmesh.policy.retry import (
    SUPPORTED_RETRY_ON,
    Decision,
    RetryBudget,
    RetryState,
    StopReason,
    backoff_delay,
    retry_on_matches,
)
from libmesh.routing.call import Call
from libmesh.routing.decision import DEFAULT_RETRY_ON, RetryPolicy
from libmesh.routing.snapshot import Snapshot


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def policy(retry_on: str, codes: tuple[int, ...] = (), attempts: int = 2, **kw: object) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        retry_on=tuple(retry_on.split(",")) if retry_on else (),
        retriable_status_codes=frozenset(codes),
        **kw,  # type: ignore[arg-type]
    )


def http(status: int) -> Outcome:
    return Outcome(status=status)


def grpc(code: int) -> Outcome:
    return Outcome(status=200, grpc_status=code)


CONNECT = Outcome(failure=Failure.CONNECT)
RESET = Outcome(failure=Failure.RESET)
REFUSED = Outcome(failure=Failure.REFUSED_STREAM)
PER_TRY_TIMEOUT = Outcome(failure=Failure.TIMEOUT)
FAILURES = {"connect": CONNECT, "reset": RESET, "refused": REFUSED, "per-try-timeout": PER_TRY_TIMEOUT}


# --- retryOn conditions --------------------------------------------------------------------------------------

# (retryOn, outcome, retried?) for HTTP calls without retriable status codes.
CONDITIONS: list[tuple[str, Outcome, bool]] = [
    # 5xx: every 5xx status and every transport failure, per-try timeouts included.
    ("5xx", http(500), True),
    ("5xx", http(503), True),
    ("5xx", http(599), True),
    ("5xx", http(499), False),
    ("5xx", http(200), False),
    *[("5xx", f, True) for f in FAILURES.values()],
    # gateway-error: 502/503/504 only among statuses, but every reset (Envoy's wouldRetryFromReset).
    ("gateway-error", http(502), True),
    ("gateway-error", http(503), True),
    ("gateway-error", http(504), True),
    ("gateway-error", http(500), False),
    ("gateway-error", http(501), False),
    *[("gateway-error", f, True) for f in FAILURES.values()],
    # reset: any failure without a response, never a status.
    *[("reset", f, True) for f in FAILURES.values()],
    ("reset", http(503), False),
    # reset-before-request: only a connect failure is known to happen before sending.
    ("reset-before-request", CONNECT, True),
    ("reset-before-request", RESET, False),
    ("reset-before-request", PER_TRY_TIMEOUT, False),
    ("reset-before-request", http(503), False),
    # connect-failure and refused-stream: exactly that failure.
    ("connect-failure", CONNECT, True),
    ("connect-failure", RESET, False),
    ("connect-failure", REFUSED, False),
    ("connect-failure", PER_TRY_TIMEOUT, False),
    ("connect-failure", http(503), False),
    ("refused-stream", REFUSED, True),
    ("refused-stream", CONNECT, False),
    ("refused-stream", RESET, False),
    ("refused-stream", PER_TRY_TIMEOUT, False),
    ("refused-stream", http(503), False),
    # retriable-4xx: 409 only.
    ("retriable-4xx", http(409), True),
    ("retriable-4xx", http(429), False),
    ("retriable-4xx", http(400), False),
    ("retriable-4xx", http(503), False),
    # retriable-status-codes without codes retries nothing.
    ("retriable-status-codes", http(503), False),
    ("retriable-status-codes", CONNECT, False),
    # envoy-ratelimited without the header: nothing.
    ("envoy-ratelimited", http(429), False),
    # retriable-headers cannot be configured through Istio: never fires.
    ("retriable-headers", http(503), False),
    ("retriable-headers", CONNECT, False),
    # gRPC conditions never fire for a plain HTTP call.
    ("unavailable", http(503), False),
    ("cancelled", http(499), False),
    ("unavailable", CONNECT, False),
    # Unknown names are ignored, as Envoy ignores them.
    ("bogus", http(503), False),
    ("", http(503), False),
    # Several conditions: any one is enough.
    ("connect-failure,retriable-4xx", http(409), True),
    ("connect-failure,retriable-4xx", CONNECT, True),
    ("connect-failure,retriable-4xx", http(503), False),
    (" 5xx , reset ", http(500), True),  # surrounding spaces, as a hand-built policy may carry
]


@pytest.mark.parametrize(("retry_on", "outcome", "expected"), CONDITIONS)
def test_retry_on_condition(retry_on: str, outcome: Outcome, expected: bool) -> None:
    assert retry_on_matches(policy(retry_on), outcome, protocol="http") is expected


# (retryOn, gRPC status, retried?) for gRPC calls (HTTP status 200, grpc-status in the response headers).
GRPC_CONDITIONS: list[tuple[str, int, bool]] = [
    ("cancelled", 1, True),
    ("deadline-exceeded", 4, True),
    ("resource-exhausted", 8, True),
    ("internal", 13, True),
    ("unavailable", 14, True),
    ("unavailable", 1, False),
    ("cancelled", 14, False),
    ("unavailable", 0, False),
    ("cancelled,deadline-exceeded,internal,resource-exhausted,unavailable", 2, False),  # UNKNOWN
    ("5xx", 14, False),  # the HTTP status of a gRPC error is 200
    ("gateway-error", 13, False),
]


@pytest.mark.parametrize(("retry_on", "code", "expected"), GRPC_CONDITIONS)
def test_grpc_condition(retry_on: str, code: int, expected: bool) -> None:
    assert retry_on_matches(policy(retry_on), grpc(code), protocol="grpc") is expected


def test_grpc_conditions_apply_only_to_grpc_calls() -> None:
    p = policy("unavailable,cancelled")
    assert retry_on_matches(p, grpc(14), protocol="grpc")
    assert retry_on_matches(p, grpc(14), protocol="grpcs")
    assert not retry_on_matches(p, grpc(14), protocol="http")
    assert not retry_on_matches(p, Outcome(status=503), protocol="grpc")  # no gRPC status in the response


@pytest.mark.parametrize(
    ("status", "expected"), [(503, True), (429, True), (500, False), (409, False), (200, False)]
)
def test_retriable_status_codes(status: int, expected: bool) -> None:
    p = policy("retriable-status-codes", codes=(503, 429))
    assert retry_on_matches(p, http(status)) is expected


def test_status_codes_without_their_condition_are_not_used() -> None:
    # Istio always adds retriable-status-codes with numeric codes; a hand-built policy without it must not
    # retry on the codes alone, as Envoy does not.
    assert not retry_on_matches(policy("connect-failure", codes=(503,)), http(503))


def test_envoy_ratelimited_header_is_retried_by_its_condition_only() -> None:
    assert retry_on_matches(policy("envoy-ratelimited"), http(429), envoy_ratelimited=True)
    # Envoy checks the header first: a rate-limited 503 is not retried by 5xx.
    assert not retry_on_matches(policy("5xx,gateway-error"), http(503), envoy_ratelimited=True)
    # A transport failure carries no header, so the flag does not matter then.
    assert retry_on_matches(policy("5xx"), RESET, envoy_ratelimited=True)


def test_supported_conditions_cover_istio_and_envoy_names() -> None:
    http_names = {"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure"}
    http_names |= {"refused-stream", "retriable-4xx", "retriable-status-codes", "envoy-ratelimited"}
    grpc_names = {"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
    assert http_names | grpc_names | {"retriable-headers"} == SUPPORTED_RETRY_ON


# --- Istio's default policy and numeric retryOn codes, through the real config path ---------------------------


def compile_route(retries: str | None) -> RetryPolicy:
    route = "route: [{destination: {host: reviews}}]"
    http = f"- retries: {retries}\n    {route}" if retries is not None else f"- {route}"
    doc = textwrap.dedent(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: r, namespace: default}
        spec:
          hosts: [reviews]
          http:
        """
    )
    decision = Snapshot.compile(load_yaml(doc + "  " + http + "\n")).route(Call(authority="reviews"))
    assert decision.retries is not None
    return decision.retries


@pytest.mark.parametrize(
    ("outcome", "protocol", "expected"),
    [
        (http(503), "http", False),  # `unavailable` is a gRPC condition: a plain 503 is not retried
        (http(500), "http", False),
        (http(502), "http", False),
        (CONNECT, "http", True),
        (REFUSED, "http", True),
        (RESET, "http", False),
        (PER_TRY_TIMEOUT, "http", False),
        (grpc(14), "grpc", True),  # unavailable
        (grpc(1), "grpc", True),  # cancelled
        (grpc(4), "grpc", False),  # deadline-exceeded is not in the default
        (grpc(13), "grpc", False),
    ],
)
def test_istio_default_policy(outcome: Outcome, protocol: str, expected: bool) -> None:
    p = compile_route(None)
    assert (p.attempts, p.retry_on, p.retriable_status_codes) == (2, DEFAULT_RETRY_ON, frozenset())
    assert retry_on_matches(p, outcome, protocol=protocol) is expected


@pytest.mark.parametrize(
    ("retry_on", "outcome", "expected"),
    [
        ("'503'", http(503), True),
        ("'503'", http(502), False),
        ("'503'", CONNECT, False),
        ("'connect-failure,503,429'", http(429), True),
        ("'connect-failure,503,429'", CONNECT, True),
        ("'connect-failure,503,429'", http(500), False),
        ("'gateway-error,409'", http(409), True),
    ],
)
def test_numeric_retry_on_codes(retry_on: str, outcome: Outcome, expected: bool) -> None:
    p = compile_route(f"{{attempts: 3, retryOn: {retry_on}}}")
    assert retry_on_matches(p, outcome) is expected


def test_retries_without_retry_on_use_istio_default_conditions() -> None:
    p = compile_route("{attempts: 5}")
    assert p.attempts == 5 and p.retry_on == DEFAULT_RETRY_ON
    assert retry_on_matches(p, CONNECT) and not retry_on_matches(p, http(503))


# --- back-off -------------------------------------------------------------------------------------------------

ALMOST_ONE = 1.0 - 2**-53


@pytest.mark.parametrize(
    ("attempt", "upper"), [(1, 0.025), (2, 0.05), (3, 0.1), (4, 0.2), (5, 0.25), (6, 0.25), (50, 0.25)]
)
def test_default_backoff_ranges(attempt: int, upper: float) -> None:
    p = policy("5xx")
    assert backoff_delay(attempt, p, 0.0) == 0.0
    assert backoff_delay(attempt, p, 0.5) == pytest.approx(upper / 2)
    high = backoff_delay(attempt, p, ALMOST_ONE)
    assert upper * 0.999 < high < upper


def test_route_backoff_is_the_base_and_caps_at_ten_times() -> None:
    p = policy("5xx", backoff=0.1)
    assert backoff_delay(1, p, 0.5) == pytest.approx(0.05)
    assert backoff_delay(2, p, 0.5) == pytest.approx(0.1)
    assert backoff_delay(4, p, 0.5) == pytest.approx(0.4)
    assert backoff_delay(5, p, 0.5) == pytest.approx(0.5)  # 1.6 s capped at 1 s
    assert backoff_delay(1000, p, 0.5) == pytest.approx(0.5)


def test_backoff_without_policy_uses_envoy_default() -> None:
    assert backoff_delay(1, None, 0.5) == pytest.approx(0.0125)


def test_backoff_is_fully_jittered() -> None:
    rng = random.Random(7)
    samples = [backoff_delay(3, None, rng.random()) for _ in range(4000)]
    assert 0.0 <= min(samples) < 0.005 and 0.095 < max(samples) < 0.1
    assert sum(samples) / len(samples) == pytest.approx(0.05, rel=0.05)


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        backoff_delay(0, None, 0.5)


# --- retry budget ---------------------------------------------------------------------------------------------


def test_budget_allows_twenty_percent_plus_ten_per_second_over_ten_seconds() -> None:
    clock = FakeClock()
    budget = RetryBudget.from_settings(None, clock=clock)
    allowed: list[bool] = []
    # 100 requests per second for 30 s; every request fails and asks for one retry.
    for i in range(3000):
        clock.now = 1000.0 + i * 0.01
        budget.deposit()
        allowed.append(budget.try_withdraw())
    # Any 10 s window: 1000 requests x 20 % + 10/s x 10 s = 300 retries.
    for start in (0, 1000, 1500, 2000):
        assert 285 <= sum(allowed[start : start + 1000]) <= 315, start
    # With nothing more, the spent budget is still spent a moment later...
    assert budget.balance == 0
    # ... and everything has expired after a quiet ttl: only the reserve is left.
    clock.now += 10.0
    assert budget.balance == 100


def test_budget_reserve_serves_quiet_clients() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock)
    assert budget.balance == 100  # 10/s over 10 s, before any request
    granted = 0
    for second in range(100):  # one request a second, each wanting many retries
        clock.now = 1000.0 + second
        budget.deposit()
        granted += sum(budget.try_withdraw() for _ in range(50))
    assert 1000 <= granted <= 1040  # about 10/s, plus 20 % of the 100 requests


def test_budget_without_reserve_needs_five_requests_per_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(percent=20.0, min_retries_per_second=0.0, clock=clock)
    assert not budget.try_withdraw()
    for _ in range(4):
        budget.deposit()
    assert budget.balance == 0 and not budget.try_withdraw()
    budget.deposit()
    assert budget.balance == 1
    assert budget.try_withdraw()
    assert not budget.try_withdraw()


def test_budget_deposits_expire_after_ttl() -> None:
    clock = FakeClock()
    budget = RetryBudget(percent=50.0, min_retries_per_second=0.0, ttl=10.0, clock=clock)
    for _ in range(10):
        budget.deposit()
    assert budget.balance == 5
    clock.now += 8.9  # still inside the window
    assert budget.balance == 5
    clock.now += 1.2
    assert budget.balance == 0


def test_budget_withdrawals_expire_too() -> None:
    clock = FakeClock()
    budget = RetryBudget(percent=0.0, min_retries_per_second=1.0, ttl=5.0, clock=clock)
    assert sum(budget.try_withdraw() for _ in range(10)) == 5
    clock.now += 5.0
    assert sum(budget.try_withdraw() for _ in range(10)) == 5


def test_refused_withdrawal_leaves_budget_untouched() -> None:
    budget = RetryBudget(percent=100.0, min_retries_per_second=0.0, clock=FakeClock())
    budget.deposit()
    assert budget.try_withdraw()
    for _ in range(5):
        assert not budget.try_withdraw()
    budget.deposit()
    assert budget.try_withdraw()


def test_empty_budget_never_allows() -> None:
    budget = RetryBudget(percent=0.0, min_retries_per_second=0.0, clock=FakeClock())
    for _ in range(100):
        budget.deposit()
    assert not budget.try_withdraw() and budget.balance == 0


def test_budget_from_mesh_config_settings() -> None:
    clock = FakeClock()
    settings = RetryBudgetSettings(percent=50.0, min_retries_per_second=0.0, ttl=timedelta(seconds=2))
    budget = RetryBudget.from_settings(settings, clock=clock)
    for _ in range(4):
        budget.deposit()
    assert budget.balance == 2
    clock.now += 2.0
    assert budget.balance == 0


def test_budget_from_partial_settings_keeps_defaults() -> None:
    budget = RetryBudget.from_settings(RetryBudgetSettings(percent=10.0), clock=FakeClock())
    assert budget.balance == 100  # default reserve: 10/s over the default 10 s


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"percent": -1.0}, "percent must not be negative"),
        ({"min_retries_per_second": -1.0}, "must not be negative"),
        ({"ttl": 0.0}, "ttl must be positive"),
        ({"buckets": 0}, "at least one bucket"),
    ],
)
def test_budget_rejects_bad_parameters(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryBudget(clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def test_budget_clock_stepping_back_does_not_corrupt_the_window() -> None:
    clock = FakeClock()
    budget = RetryBudget(percent=100.0, min_retries_per_second=0.0, clock=clock)
    budget.deposit()
    clock.now -= 30.0
    budget.deposit()
    assert budget.balance == 2
    clock.now += 30.0 + 10.0
    assert budget.balance == 0


def test_budget_is_thread_safe() -> None:
    # Switch threads as often as the interpreter allows, so that lost updates have a chance to show.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _hammer_budget()
    finally:
        sys.setswitchinterval(previous)


def _hammer_budget() -> None:
    budget = RetryBudget(percent=100.0, min_retries_per_second=0.0, clock=FakeClock())

    def fill() -> None:
        for _ in range(2000):
            budget.deposit()

    threads = [threading.Thread(target=fill) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.balance == 16000
    granted: list[int] = []

    def spend() -> None:
        granted.append(sum(budget.try_withdraw() for _ in range(3000)))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 16000 and budget.balance == 0


# --- per-call retry state -------------------------------------------------------------------------------------


def fixed(*values: float) -> itertools.cycle[float]:
    return itertools.cycle(values)


def state(p: RetryPolicy | None, *, rand: float = 0.5, **kw: object) -> RetryState:
    it = fixed(rand)
    return RetryState(p, rand=lambda: next(it), **kw)  # type: ignore[arg-type]


def step(s: RetryState, outcome: Outcome, endpoint: str | None = None, **kw: object) -> Decision:
    args: dict[str, object] = {"body_replayable": True, "fault_injected": False, "deadline_remaining": None}
    args.update(kw)
    return s.next(outcome, endpoint=endpoint, **args)  # type: ignore[arg-type]


def test_success_on_first_try_stops_at_once() -> None:
    s = state(policy("5xx"))
    d = step(s, http(200), "a")
    assert d == Decision(retry=False, reason=StopReason.SUCCESS, flag=Flag.NONE)
    assert (s.attempts, s.retries, s.tried) == (1, 0, ("a",))


def test_retries_until_exhausted_then_flags_urx() -> None:
    s = state(policy("5xx", attempts=2), rand=0.5)
    first = step(s, http(503), "a")
    assert first.retry and first.after == pytest.approx(0.0125) and first.reason is None
    assert list(s.avoid) == ["a"] and s.remaining == 1
    second = step(s, RESET, "b")
    assert second.retry and second.after == pytest.approx(0.025)
    assert list(s.avoid) == ["a", "b"] and s.remaining == 0
    last = step(s, http(500), "c")
    assert not last.retry
    assert (last.reason, last.flag) == (StopReason.EXHAUSTED, Flag.UPSTREAM_RETRY_LIMIT_EXCEEDED)
    assert (s.attempts, s.retries, s.tried) == (3, 2, ("a", "b", "c"))


def test_retry_then_success() -> None:
    s = state(policy("connect-failure"))
    assert step(s, CONNECT, "a").retry
    d = step(s, http(200), "b")
    assert (d.retry, d.reason, d.flag) == (False, StopReason.SUCCESS, Flag.NONE)
    assert s.retries == 1


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (http(200), StopReason.SUCCESS),
        (http(302), StopReason.SUCCESS),
        (grpc(0), StopReason.SUCCESS),
        (http(404), StopReason.NOT_RETRIABLE),
        (http(503), StopReason.NOT_RETRIABLE),  # the default policy does not retry a plain 503
        (RESET, StopReason.NOT_RETRIABLE),
        (grpc(5), StopReason.NOT_RETRIABLE),
    ],
)
def test_outcomes_the_default_policy_does_not_retry(outcome: Outcome, reason: StopReason) -> None:
    d = step(state(RetryPolicy(attempts=2, retry_on=DEFAULT_RETRY_ON), protocol="grpc"), outcome)
    assert (d.retry, d.reason, d.flag) == (False, reason, Flag.NONE)


def test_injected_fault_is_never_retried() -> None:
    s = state(policy("5xx,gateway-error,retriable-status-codes", codes=(503,), attempts=5))
    d = step(s, http(503), fault_injected=True)
    assert (d.retry, d.reason, d.flag) == (False, StopReason.FAULT_INJECTED, Flag.NONE)
    assert s.retries == 0


def test_unreplayable_body_is_never_retried() -> None:
    s = state(policy("5xx,connect-failure", attempts=3))
    d = step(s, CONNECT, body_replayable=False)
    assert (d.retry, d.reason, d.flag) == (False, StopReason.BODY_NOT_REPLAYABLE, Flag.NONE)


def test_unreplayable_body_does_not_matter_when_nothing_would_be_retried() -> None:
    d = step(state(policy("5xx")), http(200), body_replayable=False)
    assert d.reason is StopReason.SUCCESS


@pytest.mark.parametrize(
    ("remaining", "retry"), [(None, True), (1.0, True), (0.0126, True), (0.0125, False), (0.0, False)]
)
def test_retry_never_starts_when_the_deadline_passes_during_backoff(
    remaining: float | None, retry: bool
) -> None:
    s = state(policy("5xx"), rand=0.5)  # first back-off: 12.5 ms
    d = step(s, http(503), deadline_remaining=remaining)
    assert d.retry is retry
    if not retry:
        assert (d.reason, d.flag) == (StopReason.NO_TIME, Flag.NONE)


def test_budget_refusal_stops_with_overflow_flag() -> None:
    clock = FakeClock()
    budget = RetryBudget(percent=0.0, min_retries_per_second=0.0, clock=clock)
    s = state(policy("5xx"), budget=budget)
    d = step(s, http(503))
    assert (d.retry, d.reason, d.flag) == (False, StopReason.BUDGET_EXHAUSTED, Flag.UPSTREAM_OVERFLOW)
    assert s.retries == 0


def test_each_call_deposits_once_and_each_retry_withdraws_once() -> None:
    budget = RetryBudget(percent=100.0, min_retries_per_second=0.0, clock=FakeClock())
    s = state(policy("5xx", attempts=5), budget=budget)
    assert budget.balance == 1  # the call's own deposit
    assert step(s, http(503)).retry
    d = step(s, http(503))
    assert d.reason is StopReason.BUDGET_EXHAUSTED and budget.balance == 0


def test_refusals_for_other_reasons_cost_no_budget() -> None:
    budget = RetryBudget(percent=100.0, min_retries_per_second=0.0, clock=FakeClock())
    s = state(policy("5xx", attempts=5), budget=budget)
    assert step(s, http(503), deadline_remaining=0.0).reason is StopReason.NO_TIME
    assert step(s, http(503), body_replayable=False).reason is StopReason.BODY_NOT_REPLAYABLE
    assert step(s, http(503), fault_injected=True).reason is StopReason.FAULT_INJECTED
    assert budget.balance == 1


def test_exhausted_retries_are_reported_before_deadline_and_budget() -> None:
    budget = RetryBudget(percent=0.0, min_retries_per_second=0.0, clock=FakeClock())
    d = step(state(policy("5xx", attempts=0), budget=budget), http(503), deadline_remaining=0.0)
    assert (d.reason, d.flag) == (StopReason.EXHAUSTED, Flag.UPSTREAM_RETRY_LIMIT_EXCEEDED)


def test_no_policy_means_no_retries_and_no_flag() -> None:
    s = state(None)
    d = step(s, http(503))
    assert (d.retry, d.reason, d.flag) == (False, StopReason.NOT_RETRIABLE, Flag.NONE)
    assert s.remaining == 0


def test_istio_disabled_retries_do_not_flag_urx() -> None:
    # `retries: {attempts: 0}` compiles to no conditions at all, as Istio emits no Envoy retry policy.
    d = step(state(compile_route("{attempts: 0}")), CONNECT)
    assert (d.reason, d.flag) == (StopReason.NOT_RETRIABLE, Flag.NONE)


def test_previous_hosts_are_kept_even_when_not_avoided() -> None:
    s = state(policy("5xx", ignore_previous_hosts=False))
    step(s, http(503), "a")
    step(s, http(503), "a")
    assert s.tried == ("a",) and s.avoid == ()


def test_backoff_grows_with_each_retry_using_injected_random() -> None:
    values = iter([0.99, 0.99, 0.99, 0.99])
    s = RetryState(policy("5xx", attempts=4), rand=lambda: next(values))
    afters = [step(s, http(503)).after for _ in range(4)]
    assert afters == pytest.approx([0.02475, 0.0495, 0.099, 0.198])


def test_retry_state_over_a_flaky_upstream() -> None:
    # attempts 3 against an upstream failing half the time: a call fails only if all 4 tries fail (1/16).
    rng = random.Random(42)
    ok = 0
    calls = 4000
    for _ in range(calls):
        s = RetryState(policy("5xx", attempts=3), rand=rng.random)
        while True:
            d = step(s, http(503 if rng.random() < 0.5 else 200))
            if not d.retry:
                ok += d.reason is StopReason.SUCCESS
                break
            assert 0.0 <= d.after < 0.1
    assert ok / calls == pytest.approx(15 / 16, abs=0.015)
