"""The retry decision engine: which outcomes are retried, how long to back off, and the retry budget.

Everything here is pure bookkeeping: nothing sleeps, sends or reads a clock it was not given. The sync and
async executors differ only in how they wait for :attr:`Decision.after`; both drive the same
:class:`RetryState`::

    state = RetryState(route.retries, protocol=call.protocol, budget=budget)
    while True:
        endpoint = pick(avoid=state.avoid)
        outcome = send(endpoint)
        decision = state.next(outcome, endpoint=endpoint.key, body_replayable=True, fault_injected=False,
                              deadline_remaining=deadline - now())
        if not decision.retry:
            break  # decision.reason says why, decision.flag is URX/UO or "-"
        sleep(decision.after)

Envoy's semantics are followed where Istio relies on them (``retry_state_impl.cc``, ``router.cc`` and
``backoff_strategy.cc`` in envoyproxy/envoy, and the router filter's ``x-envoy-retry-on`` documentation).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import StrEnum

from ..config.resources import RetryBudgetSettings
from ..routing.decision import RetryPolicy
from .outcome import Failure, Flag, Outcome

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "SUPPORTED_RETRY_ON",
    "Decision",
    "RetryBudget",
    "RetryState",
    "StopReason",
    "backoff_delay",
    "retry_on_matches",
]

#: Envoy's base retry interval when the route sets no ``backoff`` (its ``upstream.base_retry_backoff_ms``).
DEFAULT_BACKOFF_BASE = 0.025

# One bit per retryOn condition, so a policy's conditions are tested with integer masks on the hot path.
_5XX = 1 << 0
_GATEWAY_ERROR = 1 << 1
_RESET = 1 << 2
_CONNECT_FAILURE = 1 << 3
_REFUSED_STREAM = 1 << 4
_RETRIABLE_4XX = 1 << 5
_STATUS_CODES = 1 << 6
_RATE_LIMITED = 1 << 7
_RESET_BEFORE_REQUEST = 1 << 8
_GRPC_CANCELLED = 1 << 9
_GRPC_DEADLINE_EXCEEDED = 1 << 10
_GRPC_INTERNAL = 1 << 11
_GRPC_RESOURCE_EXHAUSTED = 1 << 12
_GRPC_UNAVAILABLE = 1 << 13
_GRPC_ANY = (
    _GRPC_CANCELLED | _GRPC_DEADLINE_EXCEEDED | _GRPC_INTERNAL | _GRPC_RESOURCE_EXHAUSTED | _GRPC_UNAVAILABLE
)

_CONDITION_BITS: dict[str, int] = {
    "5xx": _5XX,
    "gateway-error": _GATEWAY_ERROR,
    "reset": _RESET,
    "reset-before-request": _RESET_BEFORE_REQUEST,
    "connect-failure": _CONNECT_FAILURE,
    "refused-stream": _REFUSED_STREAM,
    "retriable-4xx": _RETRIABLE_4XX,
    "retriable-status-codes": _STATUS_CODES,
    "envoy-ratelimited": _RATE_LIMITED,
    # Istio's HTTPRetry has no field for Envoy's ``retriable_headers``, so the condition has nothing to
    # match: it is accepted and never fires.
    "retriable-headers": 0,
    "cancelled": _GRPC_CANCELLED,
    "deadline-exceeded": _GRPC_DEADLINE_EXCEEDED,
    "internal": _GRPC_INTERNAL,
    "resource-exhausted": _GRPC_RESOURCE_EXHAUSTED,
    "unavailable": _GRPC_UNAVAILABLE,
}

#: retryOn names this engine understands (Envoy ignores any other name, and so do we).
SUPPORTED_RETRY_ON: frozenset[str] = frozenset(_CONDITION_BITS)

# Which conditions retry a transport failure. Envoy turns each into a stream reset and then retries any
# reset under 5xx, gateway-error and reset (despite the docs describing gateway-error by status codes
# only). A per-try timeout is a local reset of the attempt, so it is retried by those three and by nothing
# else. Only a connect failure is known to precede sending the request, which reset-before-request needs.
_RESET_LIKE = _5XX | _GATEWAY_ERROR | _RESET
_FAILURE_BITS: dict[Failure, int] = {
    Failure.CONNECT: _RESET_LIKE | _CONNECT_FAILURE | _RESET_BEFORE_REQUEST,
    Failure.REFUSED_STREAM: _RESET_LIKE | _REFUSED_STREAM,
    Failure.RESET: _RESET_LIKE,
    Failure.TIMEOUT: _RESET_LIKE,
}

_GRPC_STATUS_BITS: dict[int, int] = {
    1: _GRPC_CANCELLED,
    4: _GRPC_DEADLINE_EXCEEDED,
    8: _GRPC_RESOURCE_EXHAUSTED,
    13: _GRPC_INTERNAL,
    14: _GRPC_UNAVAILABLE,
}

_masks: dict[tuple[str, ...], int] = {}


def _mask(retry_on: tuple[str, ...]) -> int:
    # A handful of distinct retryOn tuples exist per snapshot; the cache keeps parsing off the hot path.
    # Racing threads may both compute an entry, which is harmless: the value is the same.
    mask = _masks.get(retry_on)
    if mask is None:
        mask = 0
        for name in retry_on:
            mask |= _CONDITION_BITS.get(name.strip(), 0)
        _masks[retry_on] = mask
    return mask


def retry_on_matches(
    policy: RetryPolicy, outcome: Outcome, *, protocol: str = "http", envoy_ratelimited: bool = False
) -> bool:
    """Whether ``policy.retry_on`` asks for ``outcome`` to be retried, as Envoy's router decides it.

    - ``5xx``: any 500-599 response, and every transport failure (connect failure, refused stream, reset,
      per-try timeout).
    - ``gateway-error``: 502, 503 or 504, and every transport failure.
    - ``reset``: every transport failure, per-try timeouts included.
    - ``reset-before-request``: a failure before the request was sent; only a connect failure is known to be.
    - ``connect-failure`` and ``refused-stream``: that failure only.
    - ``retriable-4xx``: 409. ``retriable-status-codes``: a status in ``policy.retriable_status_codes``.
    - ``envoy-ratelimited``: a response carrying ``x-envoy-ratelimited`` (pass ``envoy_ratelimited=True``);
      such a response is retried by this condition only, whatever its status.
    - ``cancelled`` (1), ``deadline-exceeded`` (4), ``resource-exhausted`` (8), ``internal`` (13),
      ``unavailable`` (14): the gRPC status, for gRPC calls (``protocol`` ``"grpc"``/``"grpcs"``) whose
      response carried one. A plain HTTP 503 is not ``unavailable``.
    - ``retriable-headers`` never matches (Istio cannot configure the headers); unknown names are ignored.
    """
    mask = _mask(policy.retry_on)
    if not mask:
        return False
    if outcome.failure is not None:
        return bool(mask & _FAILURE_BITS[outcome.failure])
    if envoy_ratelimited:
        return bool(mask & _RATE_LIMITED)
    status = outcome.status
    if status is not None:
        if mask & _5XX and 500 <= status <= 599:
            return True
        if mask & _GATEWAY_ERROR and status in (502, 503, 504):
            return True
        if mask & _RETRIABLE_4XX and status == 409:
            return True
        if mask & _STATUS_CODES and status in policy.retriable_status_codes:
            return True
    grpc_status = outcome.grpc_status
    if grpc_status is not None and mask & _GRPC_ANY and protocol.startswith("grpc"):
        return bool(mask & _GRPC_STATUS_BITS.get(grpc_status, 0))
    return False


def backoff_delay(attempt: int, policy: RetryPolicy | None, rand: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry), given ``rand`` in [0, 1).

    Envoy's fully jittered exponential back-off: the wait is uniform in ``[0, min(base * 2**(attempt-1),
    max))`` with ``base`` the route's ``backoff`` (25 ms by default) and ``max`` ten times ``base``. With the
    defaults the ranges are 0-25, 0-50, 0-100, 0-200 ms, then 0-250 ms for every later retry.
    """
    if attempt < 1:
        raise ValueError(f"retry numbers start at 1 (got {attempt})")
    base = DEFAULT_BACKOFF_BASE
    if policy is not None and policy.backoff is not None and policy.backoff > 0:
        base = policy.backoff
    cap = base * 10.0
    # Past 2**4 the interval is at the cap whatever the base; the bound keeps the power small.
    interval = min(base * float(1 << min(attempt - 1, 16)), cap)
    return rand * interval


class RetryBudget:
    """A request-rate retry budget (Finagle's ``RetryBudget``, Linkerd's retry budget).

    Every original request deposits ``percent`` % of a retry; every retry withdraws a whole one; deposits
    and withdrawals expire after about ``ttl`` seconds. On top of that, ``min_retries_per_second * ttl``
    retries are always available in a window, so quiet clients can still retry. With the defaults (20 %,
    10/s, 10 s), 100 failing requests per second may add about 30 retries per second.

    The window is ``buckets`` slices of ``ttl / buckets`` seconds, so each call costs O(1) whatever the
    traffic. Thread-safe; share one budget per destination. ``clock`` returns seconds (monotonic).
    """

    __slots__ = ("_clock", "_cost", "_deposit", "_lock", "_now_slot", "_reserve", "_slots", "_sum", "_width")

    # Amounts are kept in millionths of a retry so that sums of percentages stay exact integers.
    _UNIT = 1_000_000

    def __init__(
        self,
        *,
        percent: float = 20.0,
        min_retries_per_second: float = 10.0,
        ttl: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        buckets: int = 10,
    ) -> None:
        if percent < 0:
            raise ValueError(f"retry budget percent must not be negative (got {percent:g})")
        if min_retries_per_second < 0:
            raise ValueError(
                f"minimum retries per second must not be negative (got {min_retries_per_second:g})"
            )
        if ttl <= 0:
            raise ValueError(f"retry budget ttl must be positive (got {ttl:g}s)")
        if buckets < 1:
            raise ValueError(f"a retry budget needs at least one bucket (got {buckets})")
        self._clock = clock
        self._cost = self._UNIT
        self._deposit = round(percent * self._UNIT / 100.0)
        self._reserve = round(min_retries_per_second * ttl * self._UNIT)
        self._width = ttl / buckets
        self._slots = [0] * buckets
        self._now_slot = int(clock() // self._width)
        self._sum = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: RetryBudgetSettings | None, *, clock: Callable[[], float] = time.monotonic
    ) -> RetryBudget:
        """The budget MeshConfig ``retryBudget`` describes, with defaults 20 %, 10 retries/s and 10 s."""
        percent = 20.0
        per_second = 10.0
        ttl = 10.0
        if settings is not None:
            if settings.percent is not None:
                percent = settings.percent
            if settings.min_retries_per_second is not None:
                per_second = settings.min_retries_per_second
            if settings.ttl is not None:
                ttl = settings.ttl.total_seconds()
        return cls(percent=percent, min_retries_per_second=per_second, ttl=ttl, clock=clock)

    def _slot(self) -> int:
        # Expire the slices the clock has moved past; at most one pass over the ring.
        current = int(self._clock() // self._width)
        slots = self._slots
        n = len(slots)
        gap = current - self._now_slot
        if gap > 0:
            if gap >= n:
                for i in range(n):
                    slots[i] = 0
                self._sum = 0
            else:
                for step in range(1, gap + 1):
                    i = (self._now_slot + step) % n
                    self._sum -= slots[i]
                    slots[i] = 0
            self._now_slot = current
        # A clock that steps back keeps writing into the newest slice rather than into expired ones.
        return self._now_slot % n

    def deposit(self) -> None:
        """Credit the budget for one original request (not for retries)."""
        if not self._deposit:
            return
        with self._lock:
            i = self._slot()
            self._slots[i] += self._deposit
            self._sum += self._deposit

    def try_withdraw(self) -> bool:
        """Take one retry from the budget: ``True`` if the retry may go ahead, ``False`` (untouched) if not."""
        with self._lock:
            i = self._slot()
            if self._reserve + self._sum < self._cost:
                return False
            self._slots[i] -= self._cost
            self._sum -= self._cost
            return True

    @property
    def balance(self) -> int:
        """How many retries the budget would allow right now."""
        with self._lock:
            self._slot()
            return max(0, (self._reserve + self._sum) // self._cost)


class StopReason(StrEnum):
    """Why a call stops after an attempt."""

    SUCCESS = "success"  # the outcome is not an error (below 400, gRPC OK or no gRPC status)
    NOT_RETRIABLE = "not-retriable"  # an error the policy does not retry
    EXHAUSTED = "exhausted"  # retriable, but every retry was used (Envoy's URX)
    BUDGET_EXHAUSTED = "budget-exhausted"  # retriable, but the retry budget refused (Envoy's UO)
    BODY_NOT_REPLAYABLE = "body-not-replayable"  # the request body was streamed and cannot be sent again
    FAULT_INJECTED = "fault-injected"  # the outcome is an injected abort, never retried
    NO_TIME = "no-time"  # the deadline would pass before the back-off ends


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt: retry after ``after`` seconds, or stop for ``reason``.

    ``flag`` is the response flag the stop implies (``URX`` when retries ran out, ``UO`` when the budget
    refused, ``-`` otherwise); the executor merges it into the call's flags.
    """

    retry: bool
    after: float = 0.0
    reason: StopReason | None = None
    flag: Flag = Flag.NONE


_STOP_FLAGS = {
    StopReason.EXHAUSTED: Flag.UPSTREAM_RETRY_LIMIT_EXCEEDED,
    StopReason.BUDGET_EXHAUSTED: Flag.UPSTREAM_OVERFLOW,
}
# Stops are immutable and few: build them once so that a call that needs no retry allocates nothing.
_STOP: dict[StopReason, Decision] = {
    reason: Decision(retry=False, reason=reason, flag=_STOP_FLAGS.get(reason, Flag.NONE))
    for reason in StopReason
}
_NO_RETRIES = RetryPolicy(attempts=0, retry_on=())


def _is_error(outcome: Outcome) -> bool:
    if outcome.failure is not None:
        return True
    if outcome.status is not None and outcome.status >= 400:
        return True
    return outcome.grpc_status not in (None, 0)


class RetryState:
    """The retry bookkeeping of one call: attempts made, endpoints tried, retries left.

    Create one per call, before the first attempt; it deposits into ``budget`` then (one deposit per
    original request, as Finagle does). After each attempt, :meth:`next` says whether to retry. ``rand``
    returns uniform numbers in [0, 1) for the back-off jitter. ``policy`` ``None`` means no retries.
    """

    __slots__ = ("_budget", "_policy", "_protocol", "_rand", "_tried", "attempts", "retries")

    def __init__(
        self,
        policy: RetryPolicy | None,
        *,
        protocol: str = "http",
        budget: RetryBudget | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy if policy is not None else _NO_RETRIES
        self._protocol = protocol
        self._budget = budget
        self._rand = rand
        self._tried: tuple[Hashable, ...] = ()
        #: Attempts whose outcome :meth:`next` has seen (the first try included).
        self.attempts = 0
        #: Retries granted so far.
        self.retries = 0
        if budget is not None:
            budget.deposit()

    @property
    def remaining(self) -> int:
        """Retries the policy still allows (``attempts`` in Istio's terms counts retries, not tries)."""
        return max(0, self._policy.attempts - self.retries)

    @property
    def tried(self) -> tuple[Hashable, ...]:
        """The endpoint keys attempted so far, in order (without repeats)."""
        return self._tried

    @property
    def avoid(self) -> tuple[Hashable, ...]:
        """Endpoints the next pick should skip if it can: those tried, unless the policy sets
        ``retryIgnorePreviousHosts: false``. A host not yet tried is preferred, never required."""
        return self._tried if self._policy.ignore_previous_hosts else ()

    def next(
        self,
        outcome: Outcome,
        *,
        endpoint: Hashable | None = None,
        body_replayable: bool,
        fault_injected: bool,
        deadline_remaining: float | None,
        envoy_ratelimited: bool = False,
    ) -> Decision:
        """Record the attempt that produced ``outcome`` (sent to ``endpoint``) and decide what follows.

        ``body_replayable`` is false when the request body was a stream already consumed;
        ``fault_injected`` is true when ``outcome`` is an injected abort; ``deadline_remaining`` is the
        seconds left of the route timeout / propagated deadline (``None`` for none). The checks run in
        this order: injected fault, not retriable, body, retries left (URX), deadline, budget (UO).
        """
        self.attempts += 1
        if endpoint is not None and endpoint not in self._tried:
            self._tried = (*self._tried, endpoint)
        policy = self._policy
        if fault_injected:
            # Retrying an injected abort would hide the fault the user asked for (Istio #25160).
            return _STOP[StopReason.FAULT_INJECTED]
        if not retry_on_matches(
            policy, outcome, protocol=self._protocol, envoy_ratelimited=envoy_ratelimited
        ):
            return _STOP[StopReason.NOT_RETRIABLE if _is_error(outcome) else StopReason.SUCCESS]
        if not body_replayable:
            return _STOP[StopReason.BODY_NOT_REPLAYABLE]
        if self.retries >= policy.attempts:
            return _STOP[StopReason.EXHAUSTED]
        after = backoff_delay(self.retries + 1, policy, self._rand())
        if deadline_remaining is not None and deadline_remaining <= after:
            return _STOP[StopReason.NO_TIME]
        # The budget is asked last, so that a retry refused for another reason costs no token.
        if self._budget is not None and not self._budget.try_withdraw():
            return _STOP[StopReason.BUDGET_EXHAUSTED]
        self.retries += 1
        return Decision(retry=True, after=after)
