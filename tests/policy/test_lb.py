"""Load balancers: distributions, power of two choices, retries avoiding tried endpoints, consistent-hash
keys and the stability of rings and Maglev tables. Seeded random numbers and a fake clock throughout."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

import pytest

import libmesh.policy.lb as lb_mod
from libmesh.config.model.destination_rule import (
    ConsistentHashLB,
    HTTPCookie,
    HTTPCookieAttribute,
    MagLev,
    RingHash,
)
from libmesh.discovery.endpoint import Endpoint
from libmesh.policy.lb import (
    ConsistentHashBalancer,
    LeastRequestBalancer,
    LoadBalancer,
    PassthroughBalancer,
    RandomBalancer,
    RoundRobinBalancer,
    hash_key,
    hash_set_cookie,
    make_load_balancer,
    stable_hash,
)
from libmesh.routing.call import Call
from libmesh.routing.policy import EffectivePolicy, WarmupSettings


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def eps(n: int, weights: Sequence[int] | None = None) -> list[Endpoint]:
    return [Endpoint(f"10.0.0.{i + 1}", 8080, weight=weights[i] if weights else 1) for i in range(n)]


def counts(balancer: LoadBalancer, endpoints: Sequence[Endpoint], n: int, **kw: object) -> Counter[str]:
    out: Counter[str] = Counter()
    for _ in range(n):
        ep = balancer.pick(endpoints, **kw)  # type: ignore[arg-type]
        assert ep is not None
        out[ep.key] += 1
    return out


def call(**headers: str) -> Call:
    return Call(authority="reviews:9080", headers={k.replace("_", "-"): v for k, v in headers.items()})


# --- factory, empty sets, passthrough ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("LEAST_REQUEST", LeastRequestBalancer),
        ("ROUND_ROBIN", RoundRobinBalancer),
        ("RANDOM", RandomBalancer),
        ("PASSTHROUGH", PassthroughBalancer),
        ("SOMETHING_NEW", LeastRequestBalancer),
    ],
)
def test_factory_maps_policy_names(name: str, cls: type) -> None:
    assert type(make_load_balancer(EffectivePolicy(load_balancer=name), random.Random(1))) is cls


def test_factory_builds_consistent_hash_from_the_policy() -> None:
    p = EffectivePolicy(
        load_balancer="CONSISTENT_HASH", consistent_hash=ConsistentHashLB(http_header_name="x")
    )
    assert isinstance(make_load_balancer(p, random.Random(1)), ConsistentHashBalancer)


@pytest.mark.parametrize("name", ["LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH"])
def test_no_endpoints_means_no_choice(name: str) -> None:
    assert make_load_balancer(EffectivePolicy(load_balancer=name), random.Random(1)).pick([]) is None


def test_passthrough_makes_no_choice() -> None:
    b = make_load_balancer(EffectivePolicy(load_balancer="PASSTHROUGH"))
    assert b.passthrough and b.pick(eps(3), call()) is None
    assert not make_load_balancer(EffectivePolicy()).passthrough


# --- round robin ------------------------------------------------------------------------------------------


def test_round_robin_rotates_through_equal_endpoints() -> None:
    e = eps(3)
    b = RoundRobinBalancer(random.Random(3))
    seq = [ep.key for ep in (b.pick(e) for _ in range(9)) if ep is not None]
    assert seq[:3] == seq[3:6] == seq[6:9]
    assert set(seq[:3]) == {x.key for x in e}


def test_round_robin_honours_weights_exactly_over_a_cycle() -> None:
    e = eps(3, [1, 2, 3])
    c = counts(RoundRobinBalancer(random.Random(3)), e, 600)
    assert [c[x.key] for x in e] == [100, 200, 300]


def test_round_robin_interleaves_weighted_picks_instead_of_bursting() -> None:
    e = eps(2, [3, 2])
    for seed in range(5):
        b = RoundRobinBalancer(random.Random(seed))
        seq = "".join("a" if b.pick(e) is e[0] else "b" for _ in range(50))
        assert "aaa" not in seq and "bb" not in seq, seq  # not "aaabb" bursts


def test_round_robin_skips_tried_endpoints_and_falls_back_when_all_were_tried() -> None:
    e = eps(3)
    b = RoundRobinBalancer(random.Random(3))
    for _ in range(10):
        ep = b.pick(e, exclude={e[0].key})
        assert ep is not None and ep is not e[0]
    weighted = RoundRobinBalancer(random.Random(3))
    w = eps(3, [5, 1, 1])
    for _ in range(10):
        ep = weighted.pick(w, exclude={w[0].key, w[1].key})
        assert ep is w[2]
    assert b.pick(e, exclude={x.key for x in e}) in e
    assert weighted.pick(w, exclude={x.key for x in w}) in w


def test_round_robin_keeps_its_schedule_when_the_same_set_arrives_in_a_new_list() -> None:
    e = eps(3, [1, 1, 2])
    b = RoundRobinBalancer(random.Random(3))
    seen = [b.pick(list(e)) for _ in range(400)]  # a fresh list each time, same keys and weights
    c = Counter(x.key for x in seen if x is not None)
    assert [c[x.key] for x in e] == [100, 100, 200]


def test_balancers_return_the_endpoint_objects_of_the_current_list() -> None:
    old = eps(2)
    new = [Endpoint(x.address, x.port, labels={"version": "v2"}) for x in old]
    for b in (RoundRobinBalancer(random.Random(1)), RandomBalancer(random.Random(1))):
        assert b.pick(old) in old
        picked = b.pick(new)
        assert picked is not None and any(picked is x for x in new)


# --- random -----------------------------------------------------------------------------------------------


def test_random_is_uniform_for_equal_weights() -> None:
    e = eps(4)
    c = counts(RandomBalancer(random.Random(11)), e, 4000)
    assert all(850 <= c[x.key] <= 1150 for x in e), c


def test_random_follows_weights() -> None:
    e = eps(2, [1, 3])
    c = counts(RandomBalancer(random.Random(11)), e, 4000)
    assert 850 <= c[e[0].key] <= 1150, c


def test_random_avoids_tried_endpoints() -> None:
    e = eps(3, [1, 1, 100])
    b = RandomBalancer(random.Random(2))
    c = counts(b, e, 300, exclude=frozenset({e[2].key}))
    assert e[2].key not in c and set(c) == {e[0].key, e[1].key}
    assert b.pick(e, exclude={x.key for x in e}) in e


# --- least request ----------------------------------------------------------------------------------------


def test_least_request_prefers_the_less_loaded_of_two_choices() -> None:
    e = eps(3)
    active = {e[0].key: 10}
    c = counts(LeastRequestBalancer(random.Random(5)), e, 900, active=active)
    # The busy endpoint wins only when both draws land on it: 1/9 of the time.
    assert 60 <= c[e[0].key] <= 145, c
    assert c[e[1].key] > 300 and c[e[2].key] > 300


def test_least_request_is_uniform_when_idle() -> None:
    e = eps(3)
    c = counts(LeastRequestBalancer(random.Random(5)), e, 3000)
    assert all(850 <= c[x.key] <= 1150 for x in e), c


def test_least_request_keeps_the_first_draw_on_a_tie() -> None:
    class Scripted(random.Random):
        """Draws the listed indexes (out of three endpoints), in order."""

        def __init__(self, indexes: list[int]) -> None:
            super().__init__(0)
            self.indexes = indexes

        def random(self) -> float:
            return (self.indexes.pop(0) + 0.5) / 3

    e = eps(3)
    assert LeastRequestBalancer(Scripted([2, 0])).pick(e, active={}) is e[2]
    assert LeastRequestBalancer(Scripted([2, 0])).pick(e, active={e[2].key: 1}) is e[0]
    assert LeastRequestBalancer(Scripted([2, 0])).pick(e, exclude={e[1].key}, active={}) is e[2]


def test_weighted_least_request_follows_weights_when_idle() -> None:
    e = eps(2, [1, 3])
    c = counts(LeastRequestBalancer(random.Random(5)), e, 400)
    assert 95 <= c[e[0].key] <= 105, c


def test_weighted_least_request_divides_weight_by_active_requests() -> None:
    e = eps(2, [1, 3])
    # weight / (active + 1): 1 / 1 against 3 / 6, so the light endpoint now gets two thirds.
    c = counts(LeastRequestBalancer(random.Random(5)), e, 600, active={e[1].key: 5})
    assert 380 <= c[e[0].key] <= 420, c


def test_least_request_avoids_tried_endpoints() -> None:
    e = eps(3)
    b = LeastRequestBalancer(random.Random(9))
    c = counts(b, e, 300, exclude=frozenset({e[0].key}), active={e[1].key: 50})
    assert e[0].key not in c and c[e[2].key] > c[e[1].key]
    w = eps(3, [1, 2, 3])
    c = counts(b, w, 300, exclude=frozenset({w[2].key}))
    assert w[2].key not in c


# --- warmup -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [RoundRobinBalancer, LeastRequestBalancer])
def test_new_endpoints_warm_up(cls: type[RoundRobinBalancer] | type[LeastRequestBalancer]) -> None:
    clock = FakeClock()
    b = cls(random.Random(4), warmup=WarmupSettings(duration=10.0), clock=clock)
    first = eps(2)
    assert counts(b, first, 100)  # the first set is warm from the start
    grown = [*first, Endpoint("10.0.0.9", 8080)]
    c = counts(b, grown, 2100)
    assert c["10.0.0.9:8080"] <= 150, c  # 10 % weight: about 100 of 2100
    clock.t += 5.0
    c = counts(b, grown, 2500)  # half weight: about 500 of 2500
    assert 400 <= c["10.0.0.9:8080"] <= 600, c
    clock.t += 6.0
    c = counts(b, grown, 3000)
    assert 850 <= c["10.0.0.9:8080"] <= 1150, c


def test_endpoints_returning_from_ejection_do_not_warm_up_but_rediscovered_ones_do() -> None:
    clock = FakeClock()
    b = RoundRobinBalancer(random.Random(4), warmup=WarmupSettings(duration=10.0), clock=clock)
    e = eps(3)
    b.update(e)
    counts(b, e, 10)
    counts(b, e[:2], 10)  # e[2] ejected for a while
    c = counts(b, e, 300)
    assert c[e[2].key] == 100  # back at full weight at once
    b.update(e[:2])  # discovery dropped it
    counts(b, e[:2], 10)
    b.update(e)  # and it came back: a new endpoint
    c = counts(b, e, 2100)
    assert c[e[2].key] <= 150, c


def test_warmup_aggression_and_minimum_shape_the_ramp() -> None:
    clock = FakeClock()
    w = lb_mod._Warmup(WarmupSettings(duration=10.0, minimum_percent=30.0, aggression=2.0), clock)
    w.observe(["a"])
    w.observe(["a", "b"])
    assert w.factor("a") == 1.0
    assert w.factor("b") == pytest.approx(0.3)  # the floor
    clock.t += 4.0
    assert w.factor("b") == pytest.approx(0.4**0.5)
    clock.t += 6.0
    assert w.factor("b") == 1.0 and not w.active()


# --- hash keys --------------------------------------------------------------------------------------------


def test_hash_key_from_header_query_and_source_ip() -> None:
    c = Call(
        authority="r",
        path="/p?user=u1&user=u2",
        headers={"x-user": "jason"},
        source_address="10.1.2.3:51000",
    )
    assert hash_key(c, ConsistentHashLB(http_header_name="X-User")) == "jason"
    assert hash_key(c, ConsistentHashLB(http_header_name="x-missing")) is None
    assert hash_key(c, ConsistentHashLB(http_query_parameter_name="user")) == "u1"
    assert hash_key(c, ConsistentHashLB(use_source_ip=True)) == "10.1.2.3"
    assert hash_key(None, ConsistentHashLB(http_header_name="x-user")) is None


@pytest.mark.parametrize(
    ("address", "ip"),
    [
        ("10.1.2.3", "10.1.2.3"),
        ("10.1.2.3:80", "10.1.2.3"),
        ("[fe80::1]:443", "fe80::1"),
        ("fe80::1", "fe80::1"),
        (None, None),
    ],
)
def test_source_ip_key_drops_the_port(address: str | None, ip: str | None) -> None:
    assert hash_key(Call(authority="r", source_address=address), ConsistentHashLB(use_source_ip=True)) == ip


def test_cookie_key_and_generated_cookie() -> None:
    with_ttl = ConsistentHashLB(
        http_cookie=HTTPCookie(
            name="session",
            path="/",
            ttl=timedelta(seconds=60),
            attributes=(HTTPCookieAttribute(name="SameSite", value="Lax"),),
        )
    )
    without_ttl = ConsistentHashLB(http_cookie=HTTPCookie(name="session"))
    present = Call(authority="r", headers={"cookie": 'a=1; session="abc"; b=2'})
    assert hash_key(present, with_ttl) == "abc" and hash_key(present, without_ttl) == "abc"
    assert hash_set_cookie(present, with_ttl) is None
    absent = Call(authority="r", headers={"cookie": "a=1"}, source_address="10.0.0.5:1234")
    assert hash_key(absent, without_ttl) is None and hash_set_cookie(absent, without_ttl) is None
    generated = hash_key(absent, with_ttl)
    assert generated == f"{stable_hash('10.0.0.5'):016x}"
    assert (
        hash_set_cookie(absent, with_ttl)
        == f'session="{generated}"; Max-Age=60; Path=/; SameSite=Lax; HttpOnly'
    )
    # The next request carries the cookie and hashes to the same key.
    follow_up = Call(authority="r", headers={"cookie": f'session="{generated}"'})
    assert hash_key(follow_up, with_ttl) == generated
    session = ConsistentHashLB(http_cookie=HTTPCookie(name="s", ttl=timedelta(0)))
    assert hash_set_cookie(Call(authority="r"), session) == f's="{stable_hash(""):016x}"; HttpOnly'


def test_stable_hash_is_pinned() -> None:
    # Rings and tables must map keys the same way in every process and release: pin one value.
    assert stable_hash("10.0.0.1:8080_0") == 0x42120E787C8ED981
    assert stable_hash("a") != stable_hash("a", b"maglev-skip")


# --- consistent hash --------------------------------------------------------------------------------------


RING = ConsistentHashLB(http_header_name="x-user")
MAGLEV = ConsistentHashLB(http_header_name="x-user", maglev=MagLev())


def owners(b: ConsistentHashBalancer, endpoints: Sequence[Endpoint], keys: Sequence[str]) -> dict[str, str]:
    out = {}
    for k in keys:
        ep = b.pick(endpoints, call(x_user=k))
        assert ep is not None
        out[k] = ep.key
    return out


KEYS = [f"user-{i}" for i in range(2000)]


@pytest.mark.parametrize("chash", [RING, MAGLEV], ids=["ring", "maglev"])
def test_consistent_hash_is_sticky_and_spreads_keys(chash: ConsistentHashLB) -> None:
    e = eps(4)
    b = ConsistentHashBalancer(chash, random.Random(1))
    first = owners(b, e, KEYS)
    assert owners(ConsistentHashBalancer(chash, random.Random(99)), list(reversed(e)), KEYS) == first
    share = Counter(first.values())
    assert all(300 <= share[x.key] <= 700 for x in e), share


@pytest.mark.parametrize("chash", [RING, MAGLEV], ids=["ring", "maglev"])
def test_consistent_hash_moves_few_keys_when_an_endpoint_is_added(chash: ConsistentHashLB) -> None:
    e = eps(4)
    b = ConsistentHashBalancer(chash, random.Random(1))
    before = owners(b, e, KEYS)
    grown = [*e, Endpoint("10.0.0.200", 8080)]
    after = owners(b, grown, KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert len(moved) <= 0.3 * len(KEYS)  # ideal: a fifth
    # Most moved keys go to the newcomer. (Not all with a ring: like Envoy's, it keeps its total size, so
    # the other endpoints give up a few of their entries too.)
    to_new = sum(1 for k in moved if after[k] == "10.0.0.200:8080")
    assert to_new >= 0.6 * len(moved)
    # And back: removing it restores the original mapping.
    assert owners(b, e, KEYS) == before


@pytest.mark.parametrize("chash", [RING, MAGLEV], ids=["ring", "maglev"])
def test_consistent_hash_keeps_most_keys_when_an_endpoint_leaves(chash: ConsistentHashLB) -> None:
    e = eps(5)
    b = ConsistentHashBalancer(chash, random.Random(1))
    before = owners(b, e, KEYS)
    after = owners(b, e[:4], KEYS)
    assert all(after[k] != e[4].key for k in KEYS)
    stayed = [k for k in KEYS if before[k] != e[4].key]
    assert sum(after[k] == before[k] for k in stayed) >= 0.8 * len(stayed)


@pytest.mark.parametrize("chash", [RING, MAGLEV], ids=["ring", "maglev"])
def test_consistent_hash_follows_weights(chash: ConsistentHashLB) -> None:
    e = eps(2, [1, 3])
    share = Counter(owners(ConsistentHashBalancer(chash, random.Random(1)), e, KEYS).values())
    assert 350 <= share[e[0].key] <= 650, share


def test_ring_and_table_sizes() -> None:
    assert ConsistentHashBalancer(RING, random.Random()).size == 1024
    assert (
        ConsistentHashBalancer(
            ConsistentHashLB(use_source_ip=True, minimum_ring_size=4096), random.Random()
        ).size
        == 4096
    )
    sized = ConsistentHashLB(use_source_ip=True, ring_hash=RingHash(minimum_ring_size=2048))
    assert ConsistentHashBalancer(sized, random.Random()).size == 2048
    assert ConsistentHashBalancer(MAGLEV, random.Random()).size == 65537
    small = ConsistentHashBalancer(
        ConsistentHashLB(use_source_ip=True, maglev=MagLev(table_size=251)), random.Random()
    )
    assert small.size == 251 and small._table(eps(3)).size == 251
    ring = lb_mod._build_ring(eps(3), 1024)
    assert 1024 <= ring.size <= 1030 and ring.hashes == sorted(ring.hashes or [])
    weighted = lb_mod._build_ring(eps(2, [1, 3]), 1024)
    assert Counter(weighted.owners) == {0: 256, 1: 768}  # Envoy: the total is the minimum ring size


@pytest.mark.parametrize("chash", [RING, MAGLEV], ids=["ring", "maglev"])
def test_consistent_hash_retry_moves_on_deterministically(chash: ConsistentHashLB) -> None:
    e = eps(4)
    b = ConsistentHashBalancer(chash, random.Random(1))
    c = call(x_user="jason")
    home = b.pick(e, c)
    assert home is not None
    second = b.pick(e, c, exclude={home.key})
    assert second is not None and second is not home
    assert b.pick(e, c, exclude={home.key}) is second
    third = b.pick(e, c, exclude={home.key, second.key})
    assert third is not None and third not in (home, second)
    assert b.pick(e, c, exclude={x.key for x in e}) is home


def test_consistent_hash_without_a_key_picks_at_random() -> None:
    e = eps(3)
    b = ConsistentHashBalancer(RING, random.Random(1))
    c = counts(b, e, 900, call=call())
    assert all(200 <= c[x.key] <= 400 for x in e), c


def test_consistent_hash_rebuilds_only_when_the_set_changes() -> None:
    # Tables are told apart by identity (not by patching the builder, which a compiled build calls
    # directly): a rebuild is a new table object.
    b = ConsistentHashBalancer(RING, random.Random(1))
    tables: list[object] = []

    def pick(endpoints: list[Endpoint], user: str) -> int:
        b.pick(endpoints, call(x_user=user))
        table = b._last
        if not any(table is t for t in tables):
            tables.append(table)
        return len(tables)

    e = eps(3)
    assert {pick(list(e), str(i)) for i in range(20)} == {1}  # new list objects, same set
    assert pick(e[:2], "a") == 2
    assert pick(e, "a") == 2  # an ejected endpoint comes back: the old table is reused
    assert pick(e[:2], "a") == 2
    assert pick([e[0], e[1], Endpoint(e[2].address, e[2].port, weight=5)], "a") == 3


# --- threads ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"])
def test_balancers_can_be_shared_between_threads(name: str) -> None:
    b = make_load_balancer(EffectivePolicy(load_balancer=name), random.Random(1))
    sets = [eps(3, [1, 2, 3]), eps(4), eps(2, [5, 1])]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(2000):
                e = sets[(i + j) % len(sets)]
                assert b.pick(e, exclude={e[0].key}) in e
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
