"""Load balancers: which endpoint of a cluster gets the next request, as Envoy chooses it for Istio.

The main method is :meth:`LoadBalancer.pick`, called with the endpoints currently eligible
(outlier detection has already removed ejected ones), the call, the endpoint keys a retry has already
tried, and the number of active requests per endpoint key::

    lb = make_load_balancer(effective_policy(None), random.Random(7))
    ep = lb.pick(endpoints, call, frozenset(), active)

Algorithms (``EffectivePolicy.load_balancer``):

- ``ROUND_ROBIN``: strict rotation when every weight is equal (starting at a random offset, as Envoy does so
  that many clients do not hit the same endpoint first); earliest-deadline-first scheduling on the weights
  otherwise.
- ``LEAST_REQUEST`` (Istio's default): with equal weights, Envoy's power of two choices, i.e. two endpoints
  drawn at random (with replacement) and the one with fewer active requests wins, the first drawn on a tie.
  With unequal weights, earliest-deadline-first scheduling where an endpoint's weight is
  ``weight / (active + 1) ** 1.0`` at the time it is picked (Envoy's ``active_request_bias`` default, which
  Istio does not change).
- ``RANDOM``: uniform, or proportional to the weights when they differ.
- ``PASSTHROUGH``: no choice; the caller connects to the address it asked for. :meth:`pick` returns ``None``
  and :attr:`LoadBalancer.passthrough` is true.
- ``CONSISTENT_HASH``: a ring hash (``minimumRingSize`` default 1024, Envoy's algorithm) or Maglev
  (``tableSize`` default 65537) over the key :func:`hash_key` extracts from the call. Envoy hashes with
  xxHash64; libmesh uses 64-bit BLAKE2b (``hashlib``), equally stable across processes and restarts but not
  bit-compatible with Envoy, so the same key may map to another endpoint than an Envoy sidecar would choose.
  A call without a key (header, cookie or parameter absent) gets a random endpoint, as in Envoy.

Retries: ``exclude`` holds the keys of endpoints already tried; every balancer prefers an endpoint outside
it and falls back to its normal choice when all are excluded. Envoy re-runs host selection a few times for
this (Istio's ``previous_hosts`` predicate); here rotation and scheduling skip excluded endpoints, random
choices redraw, and the consistent-hash balancers walk on along the ring or table from the key's position.

Warmup (slow start, ROUND_ROBIN and LEAST_REQUEST only): an endpoint that joins after the first endpoint set
was seen has its weight scaled by ``max((age / duration) ** (1 / aggression), minimum_percent / 100)`` until
it is ``duration`` old, which switches the balancer to weighted scheduling meanwhile (as Envoy does). The
endpoints of the first set are not warmed up: they would all ramp together, which changes nothing. An
endpoint returning from ejection does not warm up again (Envoy ties slow start to a host's creation); one
that discovery removed and re-added does, which is why :meth:`LoadBalancer.update` receives discovery's
endpoint sets.

Balancers precompute per endpoint set (weights, schedules, rings, tables) and recognise the set again by
its identity or by its (key, weight) signature, so the pick path allocates nothing large. They are safe to
share between threads.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import itertools
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from ..config.model.destination_rule import ConsistentHashLB, HTTPCookie
from ..discovery.endpoint import Endpoint
from ..routing.call import Call
from ..routing.policy import EffectivePolicy, WarmupSettings

__all__ = [
    "DEFAULT_MAGLEV_TABLE_SIZE",
    "DEFAULT_MINIMUM_RING_SIZE",
    "ConsistentHashBalancer",
    "LeastRequestBalancer",
    "LoadBalancer",
    "PassthroughBalancer",
    "RandomBalancer",
    "RoundRobinBalancer",
    "hash_key",
    "hash_set_cookie",
    "make_load_balancer",
    "stable_hash",
]

DEFAULT_MINIMUM_RING_SIZE = 1024
"""Envoy's ``minimum_ring_size`` default, which Istio keeps."""
DEFAULT_MAGLEV_TABLE_SIZE = 65537
"""Envoy's Maglev ``table_size`` default (a prime)."""
_MAXIMUM_RING_SIZE = 8 * 1024 * 1024  # Envoy's maximum_ring_size default
_NO_EXCLUDE: frozenset[str] = frozenset()
_NO_ACTIVE: Mapping[str, int] = {}
_REDRAWS = 4  # random redraws to avoid excluded endpoints before filtering the list
_TABLE_CACHE = 4  # consistent-hash tables kept per balancer (ejections flip between a few sets)

Clock = Callable[[], float]


class LoadBalancer(Protocol):
    """Chooses an endpoint for one attempt. Implementations are thread-safe."""

    passthrough: bool
    """True only for PASSTHROUGH: :meth:`pick` makes no choice and the caller keeps its own address."""

    def pick(
        self,
        endpoints: Sequence[Endpoint],
        call: Call | None = None,
        exclude: Collection[str] = _NO_EXCLUDE,
        active: Mapping[str, int] = _NO_ACTIVE,
    ) -> Endpoint | None:
        """The endpoint for this attempt; ``None`` when ``endpoints`` is empty (or for PASSTHROUGH).

        ``exclude`` holds keys already tried by this call; ``active`` the active requests per endpoint key
        (only LEAST_REQUEST reads it)."""
        ...

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Discovery replaced the cluster's endpoints (all of them, not the healthy subset ``pick`` gets).
        Only warmup uses it: an endpoint that leaves and later comes back warms up again."""
        ...


def make_load_balancer(
    policy: EffectivePolicy, rand: random.Random | None = None, clock: Clock = time.monotonic
) -> LoadBalancer:
    """The balancer ``policy.load_balancer`` names (unknown names get Istio's default, LEAST_REQUEST)."""
    rand = rand if rand is not None else random.Random()
    name = policy.load_balancer
    if name == "CONSISTENT_HASH" and policy.consistent_hash is not None:
        return ConsistentHashBalancer(policy.consistent_hash, rand)
    if name == "PASSTHROUGH":
        return PassthroughBalancer()
    if name == "RANDOM":
        return RandomBalancer(rand)
    if name == "ROUND_ROBIN":
        return RoundRobinBalancer(rand, warmup=policy.warmup, clock=clock)
    return LeastRequestBalancer(rand, warmup=policy.warmup, clock=clock)


# --- hashing ----------------------------------------------------------------------------------------------


def stable_hash(data: str, salt: bytes = b"") -> int:
    """A 64-bit hash that is the same in every process and run (unlike :func:`hash`): BLAKE2b, 8 bytes.

    ``salt`` (at most 16 bytes) derives independent hashes of the same text (Maglev's offset and skip)."""
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8, salt=salt).digest(), "little")


def hash_key(call: Call | None, chash: ConsistentHashLB) -> str | None:
    """The text a consistent-hash balancer hashes for ``call``, or ``None`` when the call has none (the
    balancer then picks at random, as Envoy does).

    - ``httpHeaderName``: that header's value (repeated headers joined by commas).
    - ``httpCookie``: that cookie's value. When the request lacks it and the cookie has a ``ttl``, Envoy
      generates one from a hash of the client's address and sets it on the response; libmesh does the same
      (:func:`hash_set_cookie` gives the ``Set-Cookie`` value) and hashes the generated value, so the first
      request goes where the following ones will. Without ``ttl`` there is no key.
    - ``httpQueryParameterName``: the parameter's first value.
    - ``useSourceIp``: the client's IP address (``call.source_address`` without a port).
    """
    if call is None:
        return None
    if chash.http_header_name:
        return call.headers.get(chash.http_header_name.lower())
    if chash.http_cookie is not None:
        value = _cookie(call, chash.http_cookie.name or "")
        if value is None and _generates_cookie(chash.http_cookie):
            value = _generated_cookie_value(call)
        return value
    if chash.http_query_parameter_name:
        return call.query.get(chash.http_query_parameter_name)
    if chash.use_source_ip:
        return _source_ip(call.source_address)
    return None


def hash_set_cookie(call: Call | None, chash: ConsistentHashLB) -> str | None:
    """The ``Set-Cookie`` header value to add to the response when :func:`hash_key` generated the hash
    cookie for ``call`` (the request lacked it and the cookie has a ``ttl``); ``None`` otherwise.

    Shaped as Envoy shapes it: ``name="value"``, ``Max-Age`` when the ttl is not zero, ``Path`` when set,
    the configured attributes, then ``HttpOnly``."""
    cookie = chash.http_cookie
    if call is None or cookie is None or not _generates_cookie(cookie):
        return None
    name = cookie.name or ""
    if _cookie(call, name) is not None:
        return None
    parts = [f'{name}="{_generated_cookie_value(call)}"']
    assert cookie.ttl is not None
    ttl = int(cookie.ttl.total_seconds())
    if ttl:
        parts.append(f"Max-Age={ttl}")
    if cookie.path:
        parts.append(f"Path={cookie.path}")
    for attr in cookie.attributes:
        parts.append(f"{attr.name}={attr.value}" if attr.value else f"{attr.name}")
    parts.append("HttpOnly")
    return "; ".join(parts)


def _generates_cookie(cookie: HTTPCookie) -> bool:
    return cookie.ttl is not None


def _generated_cookie_value(call: Call) -> str:
    return f"{stable_hash(_source_ip(call.source_address) or ''):016x}"


def _cookie(call: Call, name: str) -> str | None:
    header = call.headers.get("cookie")
    if not header or not name:
        return None
    for part in header.split(";"):
        k, sep, v = part.partition("=")
        if sep and k.strip() == name:
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            return v
    return None


def _source_ip(address: str | None) -> str | None:
    if not address:
        return None
    if address.startswith("["):  # [v6]:port
        end = address.find("]")
        return address[1:end] if end > 0 else address
    host, sep, port = address.rpartition(":")
    if sep and port.isdigit() and host and ":" not in host:  # v4:port or name:port, not a bare v6
        return host
    return address


# --- shared helpers ---------------------------------------------------------------------------------------


def _signature(endpoints: Sequence[Endpoint]) -> tuple[tuple[str, int], ...]:
    return tuple((e.key, e.weight) for e in endpoints)


class _Base:
    """Defaults shared by every balancer."""

    passthrough = False

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Discovery replaced the endpoints; nothing to do for this balancer."""


class _Warmup:
    """When endpoints joined, and the slow-start factor of their weight."""

    __slots__ = ("_clock", "_first_seen", "_initial", "_settings", "_warm_until")

    def __init__(self, settings: WarmupSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._first_seen: dict[str, float] = {}
        self._initial = True
        self._warm_until = float("-inf")

    def observe(self, keys: Sequence[str]) -> None:
        """Note an endpoint set being balanced over: endpoints never seen before start warming up now.

        Endpoints that merely left the set (ejected by outlier detection) are remembered, so they do not
        warm up again when they return; only :meth:`forget_missing` drops them."""
        seen = self._first_seen
        start = float("-inf") if self._initial else self._clock()
        self._initial = False
        for k in keys:
            if k not in seen:
                seen[k] = start
                self._warm_until = max(self._warm_until, start + self._settings.duration)

    def forget_missing(self, keys: Collection[str]) -> None:
        """Discovery changed the endpoints: forget those no longer there (if they come back, they are new)."""
        seen = self._first_seen
        for k in [k for k in seen if k not in keys]:
            del seen[k]

    def active(self) -> bool:
        """Whether some endpoint is still warming up."""
        return self._clock() < self._warm_until

    def factor(self, key: str) -> float:
        """The multiplier of ``key``'s weight right now (1.0 once warm)."""
        s = self._settings
        age = self._clock() - self._first_seen.get(key, float("-inf"))
        if age >= s.duration:
            return 1.0
        progress = max(age, 0.001) / s.duration
        if s.aggression != 1.0:
            progress = progress ** (1.0 / s.aggression)
        return max(progress, s.minimum_percent / 100.0)


class _Snapshot:
    """Per endpoint-set data shared by the simple balancers; ``endpoints`` follows the newest list with the
    same signature, everything else is fixed once built."""

    __slots__ = ("cumulative", "endpoints", "equal", "keys", "signature", "total")

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = endpoints
        self.keys = tuple(e.key for e in endpoints)  # Endpoint.key formats a string on every access
        self.signature = tuple(zip(self.keys, (e.weight for e in endpoints), strict=True))
        first = endpoints[0].weight if endpoints else 1
        self.equal = all(e.weight == first for e in endpoints)
        acc = 0
        cumulative: list[int] = []
        for e in endpoints:
            acc += max(e.weight, 0)
            cumulative.append(acc)
        self.cumulative = cumulative
        self.total = acc


class _Edf:
    """Earliest-deadline-first scheduling over weighted endpoints (Envoy's weighted round robin and
    weighted least request). An endpoint's next deadline is the current time plus ``1 / weight``, with the
    weight computed when it is picked, so load-dependent weights take effect as they change."""

    __slots__ = ("_heap", "_seq", "snap")

    def __init__(self, snap: _Snapshot, weight: Callable[[Endpoint], float], skip: int) -> None:
        self.snap = snap
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, int]] = [
            (1.0 / max(weight(e), 1e-9), next(self._seq), i) for i, e in enumerate(snap.endpoints)
        ]
        heapq.heapify(self._heap)
        for _ in range(skip):  # a random start, so clients sharing a schedule do not move in lockstep
            self.pick(weight, _NO_EXCLUDE)

    def pick(self, weight: Callable[[Endpoint], float], exclude: Collection[str]) -> Endpoint:
        """The endpoint with the earliest deadline outside ``exclude`` (which must not cover them all)."""
        heap, endpoints, keys = self._heap, self.snap.endpoints, self.snap.keys
        skipped: list[tuple[float, int, int]] = []
        entry = heapq.heappop(heap)
        while exclude and keys[entry[2]] in exclude:
            skipped.append(entry)
            entry = heapq.heappop(heap)
        ep = endpoints[entry[2]]
        heapq.heappush(heap, (entry[0] + 1.0 / max(weight(ep), 1e-9), next(self._seq), entry[2]))
        for s in skipped:  # untouched: they stay next in line
            heapq.heappush(heap, s)
        return ep


class _SetAware(_Base):
    """Recognises the endpoint set of each pick and rebuilds per-set state only when it changed."""

    def __init__(self) -> None:
        self._snap: _Snapshot | None = None
        self._set_lock = threading.Lock()

    def _snapshot(self, endpoints: Sequence[Endpoint]) -> _Snapshot:
        snap = self._snap
        if snap is not None and snap.endpoints is endpoints:
            return snap
        with self._set_lock:
            snap = self._snap
            if snap is not None and snap.endpoints is endpoints:
                return snap
            new = _Snapshot(endpoints)
            if snap is not None and snap.signature == new.signature:
                snap.endpoints = endpoints  # same set in a new list: keep schedules, serve the new objects
                return snap
            self._snap = new
            self._changed(new)
            return new

    def _changed(self, snap: _Snapshot) -> None:
        """Hook, called under the set lock: the endpoint set changed."""


def _weighted_index(snap: _Snapshot, rand: random.Random) -> int:
    # random() is about half the cost of randrange(); the bias for small lists is far below 2**-40.
    if snap.equal or snap.total <= 0:
        return int(rand.random() * len(snap.keys))
    return bisect.bisect_right(snap.cumulative, int(rand.random() * snap.total))


def _draw(snap: _Snapshot, rand: random.Random, exclude: Collection[str]) -> int:
    """The index of a (weighted) random endpoint, outside ``exclude`` when there is one."""
    keys = snap.keys
    i = _weighted_index(snap, rand)
    if not exclude or keys[i] not in exclude:
        return i
    for _ in range(_REDRAWS):
        i = _weighted_index(snap, rand)
        if keys[i] not in exclude:
            return i
    rest = [j for j, k in enumerate(keys) if k not in exclude]
    if not rest:
        return i
    return rest[_weighted_index(_Snapshot([snap.endpoints[j] for j in rest]), rand)]


# --- balancers --------------------------------------------------------------------------------------------


class PassthroughBalancer(_Base):
    """PASSTHROUGH: no endpoint is chosen; the caller connects to the address it was given."""

    passthrough = True

    def pick(
        self,
        endpoints: Sequence[Endpoint],
        call: Call | None = None,
        exclude: Collection[str] = _NO_EXCLUDE,
        active: Mapping[str, int] = _NO_ACTIVE,
    ) -> Endpoint | None:
        """Always ``None``: the original destination is used."""
        return None


class RandomBalancer(_SetAware):
    """RANDOM: uniform, or weighted by ``Endpoint.weight`` when the weights differ."""

    def __init__(self, rand: random.Random) -> None:
        super().__init__()
        self._rand = rand

    def pick(
        self,
        endpoints: Sequence[Endpoint],
        call: Call | None = None,
        exclude: Collection[str] = _NO_EXCLUDE,
        active: Mapping[str, int] = _NO_ACTIVE,
    ) -> Endpoint | None:
        """A random endpoint, preferring one outside ``exclude``."""
        if not endpoints:
            return None
        snap = self._snapshot(endpoints)
        return snap.endpoints[_draw(snap, self._rand, exclude)]


class _Scheduled(_SetAware):
    """The shared part of ROUND_ROBIN and LEAST_REQUEST: per-set EDF schedule and warmup bookkeeping."""

    def __init__(self, rand: random.Random, warmup: WarmupSettings | None, clock: Clock) -> None:
        super().__init__()
        self._rand = rand
        self._lock = threading.Lock()
        self._edf: _Edf | None = None
        self._warmup = _Warmup(warmup, clock) if warmup is not None else None

    def _changed(self, snap: _Snapshot) -> None:
        self._edf = None
        if self._warmup is not None:
            self._warmup.observe(snap.keys)

    def update(self, endpoints: Sequence[Endpoint]) -> None:
        """Discovery replaced the endpoints: those gone will warm up again if they return."""
        if self._warmup is not None:
            with self._set_lock:
                self._warmup.forget_missing({e.key for e in endpoints})

    def _weighted(self, snap: _Snapshot) -> bool:
        return not snap.equal or (self._warmup is not None and self._warmup.active())

    def _weight(self, ep: Endpoint) -> float:
        raise NotImplementedError

    def _schedule(self, snap: _Snapshot, exclude: Collection[str]) -> Endpoint:
        """Under ``self._lock``: the next endpoint of the EDF schedule for ``snap``."""
        edf = self._edf
        if edf is None or edf.snap is not snap:
            edf = self._edf = _Edf(snap, self._weight, self._rand.randrange(len(snap.endpoints)))
        if exclude and all(k in exclude for k in snap.keys):
            exclude = _NO_EXCLUDE
        return edf.pick(self._weight, exclude)

    def _warm(self, ep: Endpoint, w: float) -> float:
        return w * self._warmup.factor(ep.key) if self._warmup is not None else w


class RoundRobinBalancer(_Scheduled):
    """ROUND_ROBIN: rotation for equal weights, earliest-deadline-first on the weights otherwise (and while
    an endpoint warms up)."""

    def __init__(
        self, rand: random.Random, *, warmup: WarmupSettings | None = None, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(rand, warmup, clock)
        self._counter = itertools.count(rand.randrange(1 << 16))

    def _weight(self, ep: Endpoint) -> float:
        return self._warm(ep, float(ep.weight))

    def pick(
        self,
        endpoints: Sequence[Endpoint],
        call: Call | None = None,
        exclude: Collection[str] = _NO_EXCLUDE,
        active: Mapping[str, int] = _NO_ACTIVE,
    ) -> Endpoint | None:
        """The next endpoint in rotation (or schedule), skipping those in ``exclude`` when possible."""
        if not endpoints:
            return None
        snap = self._snapshot(endpoints)
        if not self._weighted(snap):
            keys = snap.keys
            n = len(keys)
            i = next(self._counter) % n  # itertools.count is atomic: no lock needed
            if exclude and keys[i] in exclude and not all(k in exclude for k in keys):
                while keys[i] in exclude:
                    i = next(self._counter) % n
            return snap.endpoints[i]
        with self._lock:
            return self._schedule(snap, exclude)


class LeastRequestBalancer(_Scheduled):
    """LEAST_REQUEST: power of two choices on active requests for equal weights; weighted
    earliest-deadline-first with ``weight / (active + 1)`` otherwise (and while an endpoint warms up)."""

    choice_count = 2
    """Envoy's ``choice_count`` default, which Istio keeps."""
    active_request_bias = 1.0
    """Envoy's ``active_request_bias`` default, which Istio keeps."""

    def __init__(
        self, rand: random.Random, *, warmup: WarmupSettings | None = None, clock: Clock = time.monotonic
    ) -> None:
        super().__init__(rand, warmup, clock)
        self._active: Mapping[str, int] = _NO_ACTIVE

    def _weight(self, ep: Endpoint) -> float:
        return self._warm(ep, ep.weight / (self._active.get(ep.key, 0) + 1) ** self.active_request_bias)

    def pick(
        self,
        endpoints: Sequence[Endpoint],
        call: Call | None = None,
        exclude: Collection[str] = _NO_EXCLUDE,
        active: Mapping[str, int] = _NO_ACTIVE,
    ) -> Endpoint | None:
        """The less loaded of two random endpoints (or the scheduled one when weights differ)."""
        if not endpoints:
            return None
        snap = self._snapshot(endpoints)
        if not self._weighted(snap):
            rand, keys = self._rand, snap.keys
            if not exclude and self.choice_count == 2:  # the common case, kept lean
                n = len(keys)
                i = int(rand.random() * n)
                j = int(rand.random() * n)
                return snap.endpoints[j if active.get(keys[j], 0) < active.get(keys[i], 0) else i]
            best = _draw(snap, rand, exclude)
            best_active = active.get(keys[best], 0)
            for _ in range(self.choice_count - 1):
                other = _draw(snap, rand, exclude)
                other_active = active.get(keys[other], 0)
                if other_active < best_active:
                    best, best_active = other, other_active
            return snap.endpoints[best]
        with self._lock:
            self._active = active
            try:
                return self._schedule(snap, exclude)
            finally:
                self._active = _NO_ACTIVE


class _HashTable:
    """A built ring or Maglev table: ``lookup(h)`` gives an index into ``endpoints``."""

    __slots__ = ("endpoints", "hashes", "keys", "owners", "size")

    def __init__(self, endpoints: Sequence[Endpoint], hashes: list[int] | None, owners: list[int]) -> None:
        self.endpoints = endpoints
        self.keys = tuple(e.key for e in endpoints)
        self.hashes = hashes  # ring positions (sorted); None for a Maglev table
        self.owners = owners
        self.size = len(owners)

    def slot(self, h: int) -> int:
        """The ring entry or table slot a 64-bit hash lands on."""
        if self.hashes is None:
            return h % self.size
        i = bisect.bisect_left(self.hashes, h)
        return 0 if i == self.size else i


def _build_ring(endpoints: Sequence[Endpoint], minimum_size: int) -> _HashTable:
    """Envoy's ring hash: each endpoint gets ring entries in proportion to its weight, at least
    ``minimum_size`` entries in all, at the hashes of ``"<address:port>_<n>"``."""
    weights = [max(e.weight, 0) for e in endpoints]
    if not any(weights):
        weights = [1] * len(endpoints)
    total = sum(weights)
    normalized = [w / total for w in weights]
    smallest = min(w for w in normalized if w > 0)
    scale = min(math.ceil(smallest * minimum_size) / smallest, _MAXIMUM_RING_SIZE)
    entries: list[tuple[int, int]] = []
    target = 0.0
    placed = 0
    for idx, (ep, w) in enumerate(zip(endpoints, normalized, strict=True)):
        target += scale * w
        n = 0
        while placed < target:
            entries.append((stable_hash(f"{ep.key}_{n}"), idx))
            n += 1
            placed += 1
    entries.sort()
    return _HashTable(endpoints, [h for h, _ in entries], [i for _, i in entries])


def _build_maglev(endpoints: Sequence[Endpoint], size: int) -> _HashTable:
    """Maglev (Eisenbud et al., 2016) with weights: endpoints take turns claiming the next free slot of
    their own permutation of the table; an endpoint claims ``weight / max weight`` slots per turn."""
    order = sorted(range(len(endpoints)), key=lambda i: endpoints[i].key)  # independent of list order
    offsets = [stable_hash(endpoints[i].key) % size for i in order]
    skips = [stable_hash(endpoints[i].key, b"maglev-skip") % (size - 1) + 1 for i in order]
    top = max(max(e.weight, 0) for e in endpoints) or 1
    shares = [max(endpoints[i].weight, 0) / top for i in order]
    if not any(shares):
        shares = [1.0] * len(order)
    credit = [0.0] * len(order)
    nexts = [0] * len(order)
    table = [-1] * size
    filled = 0
    while filled < size:
        for j, i in enumerate(order):
            credit[j] += shares[j]
            while credit[j] >= 1.0 and filled < size:
                credit[j] -= 1.0
                off, skip, n = offsets[j], skips[j], nexts[j]
                c = (off + n * skip) % size
                while table[c] >= 0:
                    n += 1
                    c = (off + n * skip) % size
                table[c] = i
                nexts[j] = n + 1
                filled += 1
            if filled >= size:
                break
    return _HashTable(endpoints, None, table)


class ConsistentHashBalancer(_Base):
    """CONSISTENT_HASH: ring hash (the default) or Maglev over :func:`hash_key`.

    Tables are built per endpoint set and the last few are kept, so an endpoint that is ejected and comes
    back does not cost two rebuilds. When endpoints are added, most keys keep their endpoint."""

    def __init__(self, chash: ConsistentHashLB, rand: random.Random) -> None:
        self._chash = chash
        self._rand = rand
        self.maglev = chash.maglev is not None
        if self.maglev:
            assert chash.maglev is not None
            self.size = chash.maglev.table_size or DEFAULT_MAGLEV_TABLE_SIZE
        else:
            ring = chash.ring_hash.minimum_ring_size if chash.ring_hash is not None else None
            self.size = ring or chash.minimum_ring_size or DEFAULT_MINIMUM_RING_SIZE
        self._lock = threading.Lock()
        self._last: _HashTable | None = None
        self._tables: dict[tuple[tuple[str, int], ...], _HashTable] = {}

    def _table(self, endpoints: Sequence[Endpoint]) -> _HashTable:
        last = self._last
        if last is not None and last.endpoints is endpoints:
            return last
        sig = _signature(endpoints)
        with self._lock:
            table = self._tables.pop(sig, None)
            if table is None:
                table = (
                    _build_maglev(endpoints, self.size) if self.maglev else _build_ring(endpoints, self.size)
                )
            else:
                table.endpoints = endpoints  # same keys and weights in a new list
            self._tables[sig] = table  # most recently used last
            while len(self._tables) > _TABLE_CACHE:
                del self._tables[next(iter(self._tables))]
            self._last = table
        return table

    def pick(
        self,
        endpoints: Sequence[Endpoint],
        call: Call | None = None,
        exclude: Collection[str] = _NO_EXCLUDE,
        active: Mapping[str, int] = _NO_ACTIVE,
    ) -> Endpoint | None:
        """The endpoint owning the call's hash key; further along the ring or table for a retry."""
        if not endpoints:
            return None
        table = self._table(endpoints)
        key = hash_key(call, self._chash)
        h = stable_hash(key) if key is not None else self._rand.getrandbits(64)
        slot = table.slot(h)
        owners, eps, keys = table.owners, table.endpoints, table.keys
        home = owners[slot]
        if not exclude or keys[home] not in exclude or all(k in exclude for k in keys):
            return eps[home]
        size = table.size
        for step in range(1, size):
            i = owners[(slot + step) % size]
            if keys[i] not in exclude:
                return eps[i]
        return eps[home]
