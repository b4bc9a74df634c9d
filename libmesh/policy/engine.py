"""The per-call policy chain as a decision engine: what to do next, never how to do it.

A :class:`CallPlan` is created for one outbound call and answers with steps: :class:`Send` an attempt to an
endpoint, :class:`Sleep` (a fault delay or a retry back-off), :class:`Reply` with a response the mesh makes
itself (no route, redirect, direct response, fault abort, overflow, timeout...), or :class:`Deliver` the last
upstream response. Adapters run the steps with :func:`drive` (threads) or :func:`drive_async` (asyncio); the
only things they provide are sending, making a local response and discarding a response that will be
retried. Everything else (route, fault, timeout, retries and budgets, circuit breaking, endpoint choice,
outlier feedback, telemetry) happens here, once, for every adapter::

    plan = mesh.plan(call, body_replayable=True)
    response = drive(plan, send=send_attempt, reply=make_local_response, discard=close_response)

The order matches Envoy's filter chain: fault delay -> fault abort -> route timeout -> retries (with the
budget) -> endpoint pick (load balancer over outlier-healthy endpoints) -> circuit breaker -> per-try timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from ..discovery.endpoint import Endpoint
from ..errors import CallerDeadlineExceeded
from ..routing.call import Call
from ..routing.decision import Action, HeaderOps, RouteDecision, WeightedDestination
from ..routing.paths import is_rejected
from .outcome import Failure, Flag, Outcome
from .retry import RetryState, StopReason, retry_on_matches

if TYPE_CHECKING:
    from ..mesh import Mesh
    from ..routing.policy import PoolSettings
    from .cluster import Cluster

__all__ = ["CallPlan", "Deliver", "Reply", "Send", "Sleep", "Step", "drive", "drive_async"]

R = TypeVar("R")

_OVERFLOW_BODY = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
_CONNECT_BODY = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
_RESET_BODY = (
    b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
)
_TIMEOUT_BODY = b"upstream request timeout"
_NO_HEALTHY_BODY = b"no healthy upstream"
_FAULT_BODY = b"fault filter abort"
_CALLER_GONE = "the caller's own timeout passed before a response came"
# Istio's connect timeout for every cluster unless a DestinationRule sets tcp.connectTimeout.
_DEFAULT_CONNECT_TIMEOUT = 10.0
# Envoy's ResponseFlagUtils order: a call's flags are always printed in this sequence.
# fmt: off
_ENVOY_FLAG_ORDER = (
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC", "URX",
    "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF",
)
# fmt: on
_FLAG_ORDER = {name: i for i, name in enumerate(_ENVOY_FLAG_ORDER)}


@dataclass(slots=True, init=False)
class Send:
    """Send one attempt (read-only: not frozen only because a frozen dataclass takes three times as long to
    build, and one is built per attempt; its ``__init__`` is written out because a compiled build compiles
    only that one, not the generated one). ``host``/``port`` are where to connect (the endpoint, or the original address for a
    passthrough); ``authority`` is the Host header to send; ``path`` the (rewritten) path with query;
    ``headers`` the request header edits (already merged: route, destination, propagated context);
    ``timeout`` the seconds this attempt may take (``None``: no limit); ``mirrors`` shadow copies to fire and
    forget (first attempt only); ``connect_timeout`` the seconds connecting may take (the DestinationRule's
    ``tcp.connectTimeout``, Istio's 10 s by default); ``cluster_name`` the Envoy-style name of the cluster and
    ``pool`` its connection-pool settings (the same object for the cluster's life), so an adapter can keep one
    connection pool per cluster. ``policy_timeout`` says whether ``timeout`` owes anything to the mesh's policy
    (a route or per-try timeout, or a deadline propagated from the request being served): when it is false the
    limit is only the caller's own client timeout, which an adapter that hands the caller's tightened timeouts
    to its transport need not enforce again with a timer of its own."""

    host: str
    port: int
    authority: str
    path: str
    headers: HeaderOps
    timeout: float | None
    endpoint: Endpoint | None
    attempt: int
    mirrors: tuple[MirrorSend, ...]
    connect_timeout: float | None
    cluster_name: str | None
    pool: PoolSettings | None
    policy_timeout: bool

    def __init__(
        self,
        host: str,
        port: int,
        authority: str,
        path: str,
        headers: HeaderOps,
        timeout: float | None,
        endpoint: Endpoint | None,
        attempt: int,
        mirrors: tuple[MirrorSend, ...] = (),
        connect_timeout: float | None = None,
        cluster_name: str | None = None,
        pool: PoolSettings | None = None,
        policy_timeout: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = authority
        self.path = path
        self.headers = headers
        self.timeout = timeout
        self.endpoint = endpoint
        self.attempt = attempt
        self.mirrors = mirrors
        self.connect_timeout = connect_timeout
        self.cluster_name = cluster_name
        self.pool = pool
        self.policy_timeout = policy_timeout


@dataclass(frozen=True, slots=True)
class MirrorSend:
    """A shadow request: same method, path and body, to ``host:port`` with ``authority`` (Envoy appends
    ``-shadow`` to the host). Its result is ignored and it never delays or fails the call."""

    host: str
    port: int
    authority: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (an injected delay or a retry back-off), then ask the plan again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer locally: the mesh itself makes this response (Envoy's local replies)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    grpc_status: int | None = None
    flags: str = "-"


@dataclass(frozen=True, slots=True)
class Deliver:
    """The last upstream response is the call's response (apply ``response_headers`` edits to it)."""

    response_headers: HeaderOps


Step = Send | Sleep | Reply | Deliver


class CallPlan:
    """The policy decisions for one call, step by step. Not thread-safe: one call, one plan.

    ``clock`` and ``rand`` come from the mesh, so tests drive it without real time.
    """

    __slots__ = (
        "_caller_gone",
        "_cluster",
        "_delay_done",
        "_destination",
        "_flags",
        "_holding_request",
        "_holding_retry",
        "_in_flight",
        "_pending_attempt",
        "_pending_timeout",
        "_recorded",
        "_retry",
        "body_replayable",
        "call",
        "deadline",
        "decision",
        "endpoint",
        "mesh",
        "protocol",
        "response_flags",
        "started",
    )

    def __init__(self, mesh: Mesh, call: Call, *, body_replayable: bool, protocol: str = "http") -> None:
        self.mesh = mesh
        self.call = call
        self.body_replayable = body_replayable
        self.protocol = protocol
        self.started = mesh.clock()
        self.decision: RouteDecision = mesh.snapshot.route(call)
        self.deadline: float | None = None
        self.endpoint: Endpoint | None = None
        self.response_flags = "-"
        self._flags: list[str] = []
        self._destination: WeightedDestination | None = None
        self._cluster: Cluster | None = None
        self._retry: RetryState | None = None
        self._delay_done = False
        self._holding_request = False
        self._holding_retry = False
        self._pending_attempt = False
        self._pending_timeout = False
        self._caller_gone = False
        self._in_flight = False
        self._recorded = False

    # --- steps ----------------------------------------------------------------------------------------------

    def first(self) -> Step:
        """The first step of the call."""
        d = self.decision
        path = self.call.path
        if "%" in path and is_rejected(path):
            # Istio refuses a path with an encoded NUL before routing it.
            return self._reply(400, b"", Flag.NONE)
        if d.action is Action.NO_ROUTE:
            return self._reply(404, b"", Flag.NO_ROUTE)
        # Envoy's fault filter runs before the router, so a route's fault delays and aborts its redirects
        # and direct responses too.
        fault = d.fault
        if fault is not None and not self._delay_done:
            self._delay_done = True
            if fault.delay_fires(self.mesh.rand.random()):
                self._flags.append(Flag.DELAY_INJECTED)
                assert fault.delay is not None
                return self._sleep(fault.delay)
        return self._after_delay()

    def resume(self) -> Step:
        """The step after a :class:`Sleep`. Raises :class:`~libmesh.errors.CallerDeadlineExceeded` when the
        caller's own deadline (``Call.deadline``) ended the wait."""
        if self._caller_gone:
            raise CallerDeadlineExceeded(_CALLER_GONE)
        if self._pending_timeout:
            self._pending_timeout = False
            return self._reply(504, _TIMEOUT_BODY, Flag.UPSTREAM_REQUEST_TIMEOUT)
        if self._pending_attempt:
            self._pending_attempt = False
            return self._attempt(first=False)
        return self._after_delay()

    def _after_delay(self) -> Step:
        d = self.decision
        fault = d.fault
        if fault is not None and fault.abort_fires(self.mesh.rand.random()):
            if fault.abort_grpc_status is not None:
                # The status travels as grpc-status on a gRPC call; a plain HTTP caller sees 200 and the body.
                return self._reply(200, _FAULT_BODY, Flag.FAULT_INJECTED, grpc_status=fault.abort_grpc_status)
            return self._reply(fault.abort_http_status or 503, _FAULT_BODY, Flag.FAULT_INJECTED)
        if d.action is not Action.ROUTE:
            return self._route_reply(d)
        now = self.mesh.clock()
        timeout = self.mesh.effective_timeout(d.timeout)
        self.deadline = now + timeout if timeout is not None else None
        dest = d.pick(self.mesh.rand.random())
        self._destination = dest
        cluster = self.mesh.cluster(dest, self.call)
        if cluster is None:
            return self._no_cluster(dest)
        self._cluster = cluster
        budget = self.mesh.retry_budget(dest.host)
        if budget is not None:
            # A request-rate budget takes its deposit from every original request, retried or not.
            self._retry = RetryState(
                d.retries, protocol=self.protocol, budget=budget, rand=self.mesh.rand.random
            )
        # Otherwise the retry bookkeeping is made by the first attempt that may be retried (see sent()): most
        # calls succeed at once and never need it.
        return self._attempt(first=True)

    def _route_reply(self, d: RouteDecision) -> Reply:
        """A redirect or direct response: the router answers it itself, with the route's response header
        edits (Envoy finalizes a direct response's headers as it does an upstream response's)."""
        if d.action is Action.REDIRECT:
            assert d.redirect is not None
            c = self.call
            location = d.redirect.location(c.scheme, c.host, c.target_port, c.path)
            status, body, headers = d.redirect.status, b"", {"location": location}
        else:
            assert d.direct_response is not None
            status, body, headers = d.direct_response.status, d.direct_response.body or b"", {}
        self._finish_flags()
        return Reply(status, body, _edited(headers, d.response_headers), None, self.response_flags)

    def _no_cluster(self, dest: WeightedDestination) -> Step:
        if dest.subset_missing:
            return self._reply(503, b"", Flag.NO_CLUSTER_FOUND)
        # REGISTRY_ONLY and an unknown host: Istio's BlackHoleCluster answers 502.
        return self._reply(502, b"", Flag.NONE)

    def _attempt(self, *, first: bool) -> Step:
        caller = self.call.deadline
        if caller is not None and self.mesh.clock() >= caller:
            raise CallerDeadlineExceeded(_CALLER_GONE)
        cluster = self._cluster
        assert cluster is not None
        retry = self._retry
        # As Envoy: the load balancer picks the host, then the host's pool checks the circuit breakers.
        if cluster.passthrough:
            endpoint = None
            host, port = self.mesh.passthrough_address(self._destination_host(), self.call)
        else:
            avoid = cast("tuple[str, ...]", retry.avoid) if retry is not None else ()
            endpoint = cluster.pick(self.call, avoid)
            if endpoint is None:
                self._release_retry()
                return self._reply(503, _NO_HEALTHY_BODY, Flag.NO_HEALTHY_UPSTREAM)
            host, port = endpoint.address, endpoint.port
        if not cluster.start_request(endpoint):
            self._release_retry()
            return self._reply(503, _OVERFLOW_BODY, Flag.UPSTREAM_OVERFLOW)
        self._holding_request = True
        self._in_flight = endpoint is not None
        self.endpoint = endpoint
        timeout = self._attempt_timeout()
        retries = self.decision.retries
        return Send(
            host=host,
            port=port,
            authority=self._authority(),
            path=self._path(),
            headers=self._request_headers(),
            timeout=timeout,
            endpoint=endpoint,
            attempt=retry.attempts + 1 if retry is not None else 1,
            mirrors=self._mirrors() if first and self.body_replayable and self.decision.mirrors else (),
            connect_timeout=cluster.policy.pool.connect_timeout or _DEFAULT_CONNECT_TIMEOUT,
            cluster_name=cluster.name,
            pool=cluster.policy.pool,
            policy_timeout=self.deadline is not None
            or (retries is not None and retries.per_try_timeout is not None),
        )

    def sent(self, outcome: Outcome, *, fault_injected: bool = False) -> Step:
        """The step after an attempt ended with ``outcome`` (a response's status, or a transport failure).
        ``fault_injected``: the response says it is the result of a fault injected further down the call
        chain, which is never retried (Istio issue #25160)."""
        cluster = self._cluster
        assert cluster is not None
        self._release(outcome)
        now = self.mesh.clock()
        caller = self.call.deadline
        if outcome.failure is not None and caller is not None and now >= caller:
            # The caller has stopped waiting: nothing to retry or answer for (its client times out).
            raise CallerDeadlineExceeded(_CALLER_GONE)
        route_timed_out = self.deadline is not None and now >= self.deadline
        if outcome.failure is Failure.TIMEOUT and route_timed_out:
            return self._reply(504, _TIMEOUT_BODY, Flag.UPSTREAM_REQUEST_TIMEOUT)
        remaining = None if self.deadline is None else self.deadline - now
        retry = self._retry
        if retry is None:
            policy = self.decision.retries
            if (
                fault_injected
                or policy is None
                or not retry_on_matches(policy, outcome, protocol=self.protocol)
            ):
                # Not retried, whatever else holds (what RetryState.next answers first for these).
                return self._final(outcome, Flag.NONE)
            retry = self._retry = RetryState(policy, protocol=self.protocol, rand=self.mesh.rand.random)
        decision = retry.next(
            outcome,
            endpoint=self.endpoint.key if self.endpoint is not None else None,
            body_replayable=self.body_replayable,
            fault_injected=fault_injected,
            deadline_remaining=remaining,
        )
        if decision.retry:
            if not cluster.acquire_retry():
                # Envoy flags a retry refused by maxRetries or the retry budget as an overflow.
                return self._final(outcome, Flag.UPSTREAM_OVERFLOW)
            self._holding_retry = True
            if decision.after > 0:
                self._pending_attempt = True
                return self._sleep(decision.after)
            return self._attempt(first=False)
        if decision.reason is StopReason.NO_TIME and remaining is not None:
            # Envoy keeps the retry scheduled; the route timeout fires first and answers 504 UT.
            if remaining <= 0:
                return self._reply(504, _TIMEOUT_BODY, Flag.UPSTREAM_REQUEST_TIMEOUT)
            self._pending_timeout = True
            return self._sleep(remaining)
        return self._final(outcome, decision.flag)

    def _final(self, outcome: Outcome, flag: Flag) -> Step:
        if flag is not Flag.NONE:
            self._flags.append(flag)
        if outcome.failure is not None:
            # The failure's own flag stays next to URX/UO, as Envoy reports "UF,URX" or "UT,URX".
            if outcome.failure is Failure.TIMEOUT:
                return self._reply(504, _TIMEOUT_BODY, Flag.UPSTREAM_REQUEST_TIMEOUT)
            if outcome.failure is Failure.CONNECT:
                return self._reply(503, _CONNECT_BODY, Flag.UPSTREAM_CONNECTION_FAILURE)
            return self._reply(503, _RESET_BODY, Flag.UPSTREAM_CONNECTION_TERMINATION)
        self._finish_flags()
        dest = self._destination
        if dest is None:
            return Deliver(self.decision.response_headers)
        return self._leg(dest).deliver

    # --- pieces ---------------------------------------------------------------------------------------------

    def _reply(self, status: int, body: bytes, flag: Flag, *, grpc_status: int | None = None) -> Reply:
        if flag is not Flag.NONE:
            self._flags.append(flag)
        self._finish_flags()
        return Reply(status, body, {}, grpc_status, self.response_flags)

    def flag(self, flag: Flag) -> None:
        """Add a response flag after the response was delivered (e.g. ``UT`` when the route timeout ends the
        body), before :meth:`done` records the call."""
        self._flags.append(flag)
        self._finish_flags()

    def _finish_flags(self) -> None:
        flags = self._flags
        if not flags:
            self.response_flags = "-"
            return
        # Envoy prints the flags in one fixed order whatever order they were set in, so "DI,FI" and
        # "UF,URX" read (and match in PromQL) the same as a sidecar's.
        names = sorted({str(f) for f in flags}, key=lambda f: _FLAG_ORDER.get(f, len(_FLAG_ORDER)))
        self.response_flags = ",".join(names)

    def _release(self, outcome: Outcome | None = None) -> None:
        """Give back the attempt's request slot and endpoint count (telling outlier detection ``outcome``,
        when given) and the retry slot."""
        cluster = self._cluster
        if self._holding_request and cluster is not None:
            self._holding_request = False
            endpoint = self.endpoint if self._in_flight else None
            self._in_flight = False
            cluster.end_request(endpoint, outcome)
        self._release_retry()

    def _release_retry(self) -> None:
        if self._holding_retry and self._cluster is not None:
            self._cluster.release_retry()
            self._holding_retry = False

    def _attempt_timeout(self) -> float | None:
        retries = self.decision.retries
        limit = retries.per_try_timeout if retries is not None else None
        now = self.mesh.clock()
        for deadline in (self.deadline, self.call.deadline):
            if deadline is not None:
                remaining = max(0.0, deadline - now)
                limit = remaining if limit is None else min(limit, remaining)
        return limit

    def _sleep(self, seconds: float) -> Sleep:
        """Wait ``seconds``, or less when the caller's own deadline comes first (then :meth:`resume`
        raises): an injected delay or a back-off never outlasts the caller's patience."""
        caller = self.call.deadline
        if caller is not None:
            left = caller - self.mesh.clock()
            if left <= seconds:
                self._caller_gone = True
                return Sleep(max(0.0, left))
        return Sleep(seconds)

    def _destination_host(self) -> str:
        assert self._destination is not None
        return self._destination.host

    def _authority(self) -> str:
        d, dest = self.decision, self._destination
        if d.rewrite is not None and d.rewrite.authority:
            return d.rewrite.authority
        if dest is not None and dest.authority:
            return dest.authority
        return self.call.authority

    def _path(self) -> str:
        rw = self.decision.rewrite
        if rw is None or (rw.uri is None and rw.regex is None):
            return self.call.path
        return rw.apply_path(self.call.path)

    def _request_headers(self) -> HeaderOps:
        mesh = self.mesh
        propagated = mesh.propagated_headers(self.call, self.deadline)
        dest = self._destination
        if dest is None:
            return _merge_request(propagated, self.decision.request_headers, HeaderOps())
        if propagated is mesh.static_propagated:
            return self._leg(dest).request
        return _merge_request(propagated, self.decision.request_headers, dest.headers_request)

    def _leg(self, dest: WeightedDestination) -> _Leg:
        """What this route and destination always produce, built on first use (see :class:`_Leg`)."""
        legs = self.mesh.legs
        leg: _Leg | None = legs.get(id(dest))
        if leg is None or leg.destination is not dest or leg.decision is not self.decision:
            leg = _Leg(self.decision, dest, self.mesh.static_propagated)
            if len(legs) >= 4096:
                legs.clear()
            legs[id(dest)] = leg
        return leg

    def _mirrors(self) -> tuple[MirrorSend, ...]:
        out = []
        for m in self.decision.mirrors:
            if self.mesh.rand.random() * 100.0 >= m.percent:
                continue
            target = self.mesh.mirror_target(m, self.call)
            if target is not None:
                host, port = target
                out.append(MirrorSend(host, port, _shadow_authority(self._authority())))
        return tuple(out)

    def done(
        self, status: int, *, request_bytes: int = 0, response_bytes: int = 0, peer: str | None = None
    ) -> None:
        """The call is over: record it once (metrics, access log). ``peer`` is the destination's identity
        header from the response, when it sent one."""
        self._release()
        if not self._recorded:
            self._recorded = True
            self.mesh.record_outbound(self, status, request_bytes, response_bytes, peer)

    def abandon(self) -> None:
        """The caller went away before the call ended (its task was cancelled, or an exception escaped the
        adapter): give back the endpoint and the circuit-breaker slots the call holds, so they do not leak,
        and record it once as Envoy records a downstream disconnect (response code 0, flag ``DC``). An
        attempt cut short this way tells outlier detection nothing."""
        self._release()
        if not self._recorded:
            self._flags.append(Flag.DOWNSTREAM_CONNECTION_TERMINATION)
            self._finish_flags()
            self.done(0)


class _Leg:
    """The parts of every call on one (route decision, destination) that do not depend on the call: the
    request header edits merged with the static propagated headers, and the delivery step with the response
    edits merged (Envoy applies the weighted cluster's, then the route's). Built once, read by every call."""

    __slots__ = ("decision", "deliver", "destination", "request")

    def __init__(self, decision: RouteDecision, dest: WeightedDestination, static: Mapping[str, str]) -> None:
        self.decision = decision
        self.destination = dest
        self.request = _merge_request(static, decision.request_headers, dest.headers_request)
        route, own = decision.response_headers, dest.headers_response
        if not own:
            self.deliver = Deliver(route)
        else:
            # The destination's 'add' already carries the route's value after its own for a header both add
            # (see Snapshot's _under), so it goes last here, as it does for requests in _merge_request.
            self.deliver = Deliver(
                HeaderOps({**own.set, **route.set}, {**route.add, **own.add}, own.remove + route.remove)
            )


def _edited(headers: dict[str, str], ops: HeaderOps) -> dict[str, str]:
    """A local reply's ``headers`` with response edits: removals, then ``set``, then ``add`` (joined to a
    value already there with ``,``, as a repeated header reads)."""
    if not ops:
        return headers
    for name in ops.remove:
        headers.pop(name, None)
    headers.update(ops.set)
    for name, value in ops.add.items():
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _merge_request(propagated: Mapping[str, str], route: HeaderOps, dest: HeaderOps) -> HeaderOps:
    """The request edits of one attempt: propagated headers, overridden by the route's, then the
    destination's edits."""
    if not dest and not propagated:
        return route
    set_ = {**propagated, **route.set, **dest.set}
    add = {**route.add, **dest.add}
    return HeaderOps(set_, add, route.remove + dest.remove)


def _injected(injected: Callable[[R], bool] | None, response: R | None) -> bool:
    return injected is not None and response is not None and injected(response)


def _shadow_authority(authority: str) -> str:
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit():
        return f"{host}-shadow:{port}"
    return f"{authority}-shadow"


def drive(
    plan: CallPlan,
    *,
    send: Callable[[Send], tuple[Outcome, R]],
    reply: Callable[[Reply], R],
    deliver: Callable[[R, Deliver], R],
    discard: Callable[[R], None],
    sleep: Callable[[float], None] = time.sleep,
    injected: Callable[[R], bool] | None = None,
) -> R:
    """Run ``plan`` with blocking I/O: ``send`` performs an attempt and returns its outcome and response
    (it must not raise for transport errors: it reports them as an :class:`Outcome` failure and returns a
    placeholder), ``reply`` makes a local response, ``deliver`` finalises the upstream response, ``discard``
    releases a response that will be retried, ``injected`` (optional) tells whether a response reports a fault
    injected further down the chain. If anything raises meanwhile, the plan is abandoned (see
    :meth:`CallPlan.abandon`) and the exception propagates."""
    last: R | None = None
    try:
        step = plan.first()
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = plan.resume()
            elif isinstance(step, Send):
                if last is not None:
                    discard(last)
                    last = None
                outcome, last = send(step)
                step = plan.sent(outcome, fault_injected=_injected(injected, last))
            elif isinstance(step, Reply):
                if last is not None:
                    discard(last)
                    last = None
                return reply(step)
            else:
                assert last is not None
                return deliver(last, step)
    except BaseException:
        plan.abandon()
        if last is not None:
            discard(last)
        raise


async def drive_async(
    plan: CallPlan,
    *,
    send: Callable[[Send], Awaitable[tuple[Outcome, R]]],
    reply: Callable[[Reply], R],
    deliver: Callable[[R, Deliver], R],
    discard: Callable[[R], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]],
    injected: Callable[[R], bool] | None = None,
) -> R:
    """The asyncio twin of :func:`drive`; the decisions are the same, only waiting differs. A cancelled
    call abandons its plan, so its circuit-breaker slots and endpoint count are given back."""
    last: R | None = None
    try:
        step = plan.first()
        while True:
            if isinstance(step, Sleep):
                await sleep(step.seconds)
                step = plan.resume()
            elif isinstance(step, Send):
                if last is not None:
                    await discard(last)
                    last = None
                outcome, last = await send(step)
                step = plan.sent(outcome, fault_injected=_injected(injected, last))
            elif isinstance(step, Reply):
                if last is not None:
                    await discard(last)
                    last = None
                return reply(step)
            else:
                assert last is not None
                return deliver(last, step)
    except BaseException:
        plan.abandon()
        if last is not None:
            # Closing only returns the connection to the pool; a second cancellation may interrupt it.
            with contextlib.suppress(BaseException):
                await discard(last)
        raise
