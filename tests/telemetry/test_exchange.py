"""The metadata exchange: a caller that knows an endpoint's identity lets it leave its answer out, and
what it knows is checked by the endpoint on every call and forgotten when it goes unconfirmed."""

from __future__ import annotations

from libmesh.telemetry.exchange import PeerExchange, peer_token

ME = "w=productpage-v1,ns=default"
REVIEWS = "w=reviews-v2,ns=default"
RATINGS = "w=ratings-v1,ns=default"
EP = "10.0.0.7:9080"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_asks_to_skip_only_an_answer_it_has_heard() -> None:
    exchange = PeerExchange(ME, Clock())
    assert exchange.request_value(EP) is None
    assert exchange.resolve(EP, REVIEWS, asked=False) == REVIEWS
    assert exchange.request_value(EP) == f"{ME},k={peer_token(REVIEWS)}"
    assert exchange.request_value("10.0.0.8:9080") is None


def test_a_skipped_answer_is_the_identity_known() -> None:
    exchange = PeerExchange(ME, Clock())
    exchange.resolve(EP, REVIEWS, asked=False)
    assert exchange.resolve(EP, None, asked=True) == REVIEWS


def test_a_new_identity_at_the_address_replaces_the_old_at_once() -> None:
    exchange = PeerExchange(ME, Clock())
    exchange.resolve(EP, REVIEWS, asked=False)
    assert exchange.resolve(EP, RATINGS, asked=True) == RATINGS
    assert exchange.request_value(EP) == f"{ME},k={peer_token(RATINGS)}"


def test_what_goes_unconfirmed_for_the_ttl_is_asked_again_and_dropped_if_nobody_answers() -> None:
    clock = Clock()
    exchange = PeerExchange(ME, clock, ttl=5.0)
    exchange.resolve(EP, REVIEWS, asked=False)
    clock.now += 4.9
    assert exchange.request_value(EP) is not None
    clock.now += 0.1
    assert exchange.request_value(EP) is None
    # Not asked to skip, and no answer: whatever listens there now is outside the mesh.
    assert exchange.resolve(EP, None, asked=False) is None
    assert exchange.resolve(EP, None, asked=True) is None
    # An answer to a plain request starts the period again.
    exchange.resolve(EP, REVIEWS, asked=False)
    assert exchange.request_value(EP) is not None


def test_a_server_answers_unless_the_caller_named_its_own_identity() -> None:
    server = PeerExchange(REVIEWS, Clock())
    assert server.answers(None)
    assert server.answers(ME)
    assert server.answers(f"{ME},k={peer_token(RATINGS)}")
    assert not server.answers(f"{ME},k={peer_token(REVIEWS)}")


def test_a_workload_without_an_identity_never_asks_and_never_answers() -> None:
    exchange = PeerExchange(None, Clock())
    assert exchange.resolve(EP, REVIEWS, asked=False) == REVIEWS
    assert exchange.request_value(EP) is None
    assert not exchange.answers(None)


def test_the_token_names_the_value() -> None:
    assert peer_token(REVIEWS) == peer_token(REVIEWS)
    assert peer_token(REVIEWS) != peer_token(RATINGS)
    assert len(peer_token(REVIEWS)) == 12 and int(peer_token(REVIEWS), 16) >= 0


def test_an_endpoint_that_answered_nothing_is_silent_for_the_ttl_until_it_answers() -> None:
    clock = Clock()
    exchange = PeerExchange(ME, clock)
    assert not exchange.silent(EP)
    assert exchange.resolve(EP, None, asked=False) is None
    assert exchange.silent(EP) and not exchange.silent("10.0.0.8:9080")
    clock.now += 4.9
    assert exchange.silent(EP)
    clock.now += 0.2
    assert not exchange.silent(EP)
    exchange.resolve(EP, None, asked=False)
    assert exchange.silent(EP)
    assert exchange.resolve(EP, REVIEWS, asked=False) == REVIEWS
    assert not exchange.silent(EP)
