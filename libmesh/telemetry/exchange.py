"""Istio's metadata exchange between the two ends of a call, with the answer left out when the caller
already knows it.

Every request carries the caller's identity in ``x-libmesh-peer`` (see
:func:`~libmesh.telemetry.metrics.encode_peer`), and the destination answers with its own, so both ends
label their metrics with the other's workload. An endpoint's identity changes only when another workload
takes over its address, so a caller that heard it less than :data:`PEER_TTL` ago says so: it adds
``k=<token>`` to its own identity, the token naming the identity it heard. A destination whose identity has
that token leaves its answer out, and the caller labels the call with the identity it knows. A destination
with another identity (a different mesh workload now listens there) answers with its own, which replaces the
old one at once; one outside the mesh never answers, so what the caller knew is forgotten when it has not
been confirmed for :data:`PEER_TTL`.

An answer header costs both ends about 5 us a call on HTTP/1.1 (h11 writes and parses it), some 2 % of a
loopback call; see docs/performance.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Final

__all__ = ["PEER_TTL", "PeerExchange", "peer_token"]

#: Seconds a caller trusts an endpoint's identity without hearing it again.
PEER_TTL: Final = 5.0

_TOKEN_KEY: Final = ",k="
_MAX_ENDPOINTS: Final = 4096


def peer_token(identity: str) -> str:
    """The short token naming an identity header value: 12 hex digits of its BLAKE2b hash."""
    return hashlib.blake2b(identity.encode("utf-8"), digest_size=6).hexdigest()


class PeerExchange:
    """Both ends of the exchange for one local workload whose identity header value is ``own`` (``None``:
    it sends none, and never asks to skip an answer).

    A client transport asks :meth:`request_value` what to send to an endpoint and hands the answer (or its
    absence) to :meth:`resolve`; a server adapter asks :meth:`answers` whether to send its identity::

        exchange = PeerExchange("w=productpage-v1,ns=default", clock=time.monotonic)
        value = exchange.request_value("10.0.0.7:9080")  # None at first: send the plain identity
        exchange.resolve("10.0.0.7:9080", "w=reviews-v2,ns=default", asked=False)
        exchange.request_value("10.0.0.7:9080")  # 'w=productpage-v1,ns=default,k=...': it may skip its answer

    Thread-safe: entries are replaced whole, and two threads learning the same endpoint at once only
    repeat an exchange.
    """

    __slots__ = ("_clock", "_known", "_silent", "_suffix", "own", "ttl")

    def __init__(self, own: str | None, clock: Callable[[], float], ttl: float = PEER_TTL) -> None:
        self.own = own or None
        self.ttl = ttl
        self._clock = clock
        #: What a request ends with when its caller knows this workload's identity.
        self._suffix = _TOKEN_KEY + peer_token(own) if own else None
        # endpoint key -> (its identity, the request value naming it, when it stops being trusted)
        self._known: dict[str, tuple[str, str, float]] = {}
        # endpoint key -> until when it is taken to answer nothing (it is outside the mesh)
        self._silent: dict[str, float] = {}

    def request_value(self, endpoint: str) -> str | None:
        """The identity header value to send to ``endpoint`` when it may skip its answer (this workload's
        identity and the token of the endpoint's); ``None`` when the plain identity is to be sent."""
        entry = self._known.get(endpoint)
        if entry is None or self._clock() >= entry[2]:
            return None
        return entry[1]

    def resolve(self, endpoint: str, answered: str | None, asked: bool) -> str | None:
        """The identity to label a call to ``endpoint`` with: ``answered`` (the identity header of its
        response, ``None`` if it had none) or, when the request ``asked`` it to skip and it did, the one
        known. An endpoint that answers nothing though not asked is not in the mesh: it is forgotten."""
        known = self._known
        if answered is not None:
            if self._silent:
                self._silent.pop(endpoint, None)
            entry = known.get(endpoint)
            if (entry is None or entry[0] != answered or not asked) and self.own is not None:
                if len(known) >= _MAX_ENDPOINTS:
                    known.clear()
                known[endpoint] = (
                    answered,
                    self.own + _TOKEN_KEY + peer_token(answered),
                    self._clock() + self.ttl,
                )
            return answered
        if asked:
            entry = known.get(endpoint)
            return entry[0] if entry is not None else None
        if known:
            known.pop(endpoint, None)
        silent = self._silent
        if len(silent) >= _MAX_ENDPOINTS:
            silent.clear()
        silent[endpoint] = self._clock() + self.ttl
        return None

    def silent(self, endpoint: str) -> bool:
        """Whether ``endpoint`` answered a plain request with no identity less than the TTL ago: a caller
        for which reading the answer costs (a gRPC trailer) may then skip it and label the call as
        outside the mesh, as :meth:`resolve` would."""
        until = self._silent.get(endpoint)
        return until is not None and self._clock() < until

    def answers(self, request_value: str | None) -> bool:
        """Whether a server answers a request carrying identity header ``request_value`` with its own
        identity: always, unless the caller named this workload's identity (and it has one to send)."""
        suffix = self._suffix
        if suffix is None:
            return False
        return request_value is None or not request_value.endswith(suffix)
