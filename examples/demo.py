"""``make demo``: Istio's Bookinfo, in Python, on libmesh.

Starts productpage, details, reviews v1/v2/v3 and ratings, each its own process on 127.0.0.1, then walks
through Istio's traffic-management tasks: every scenario is a file from examples/bookinfo_py/networking/
hot-reloaded into the configuration directory all services watch, followed by real page loads and what a
user would have seen. Then it leaves the app running at http://127.0.0.1:9080/productpage until Ctrl-C.

``python -m examples.demo [--once] [--consul [HOST:PORT]]``

* ``--once``: run the tour and exit (0 when every scenario behaved as Istio's tasks describe);
* ``--consul``: take endpoints from Consul instead of WorkloadEntries: an in-process
  ``libmesh.testing.ConsulServer``, or the agent at ``HOST:PORT``.
Ports: ``BOOKINFO_PORTS=productpage=19080,details=19081,...`` (see examples/bookinfo_py/topology.py).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from examples.bookinfo_py.launcher import Bookinfo, PageView, shares
from examples.bookinfo_py.topology import NETWORKING, Ports

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / "examples" / "bookinfo_py" / "run"

DR = "destination-rules.yaml"
ALL_V1 = "route-all-v1.yaml"
JASON_V2 = "jason-v2.yaml"


class TourFailed(Exception):
    """A scenario did not behave as Istio's task says it should."""


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise TourFailed(what)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _shares_text(views: Sequence[PageView]) -> str:
    counts = shares(views)
    total = len(views)
    return ", ".join(f"{k} {n} ({100 * n / total:.0f} %)" for k, n in counts.items())


@dataclass
class Scenario:
    """One step of the tour: the files applied, and the traffic that shows what they do."""

    title: str
    task: str
    files: list[str]
    show: Callable[[Bookinfo], None]


def _no_rules(app: Bookinfo) -> None:
    views = app.pages(60)
    _say(f"   60 page loads: {_shares_text(views)}")
    _say("   -> with no VirtualService, reviews is balanced over its three versions: refresh the page and")
    _say("      the stars come and go (v1 none, v2 black, v3 red)")
    _expect(set(shares(views)) == {"v1", "v2", "v3"}, f"expected all three versions, got {shares(views)}")


def _all_v1(app: Bookinfo) -> None:
    views = app.pages(50)
    _say(f"   50 page loads: {_shares_text(views)}")
    _expect(shares(views) == {"v1": 50}, f"expected only v1, got {shares(views)}")


def _jason(app: Bookinfo) -> None:
    jason = app.pages(10, user="jason")
    anon = app.pages(10)
    _say(f"   jason, 10 loads: {_shares_text(jason)}; {jason[0].describe()}")
    _say(f"   anonymous, 10 loads: {_shares_text(anon)}; {anon[0].describe()}")
    _say(
        "   -> productpage set no header by hand: the login cookie became `end-user` once, on the way in, and"
    )
    _say("      the mesh forwarded it on the call to reviews, where the route matched it")
    _expect(
        shares(jason) == {"v2": 10} and jason[0].star_color == "black", "jason should see v2 (black stars)"
    )
    _expect(shares(anon) == {"v1": 10}, "anonymous users should see v1")


def _fifty(app: Bookinfo) -> None:
    views = app.pages(100)
    _say(f"   100 page loads: {_shares_text(views)}")
    v3 = shares(views).get("v3", 0)
    _expect(
        set(shares(views)) <= {"v1", "v3"} and 30 <= v3 <= 70, f"expected about 50/50, got {shares(views)}"
    )


def _all_v3(app: Bookinfo) -> None:
    views = app.pages(30)
    _say(f"   30 page loads: {_shares_text(views)}; {views[0].describe()}")
    _expect(shares(views) == {"v3": 30}, f"expected only v3, got {shares(views)}")


def _delay(app: Bookinfo) -> None:
    _say("   loading the page as jason (reviews v2 waits up to 10 s for ratings; productpage gives reviews")
    _say("   3 s and one more try) ...")
    view = app.page("jason")
    _say(f"   jason, after {view.elapsed:.1f} s: {view.describe()}")
    anon = app.page()
    _say(f"   anonymous, after {anon.elapsed:.2f} s: {anon.describe()}")
    _say(
        "   -> the 7 s delay was meant for ratings, but 2 x 3 s < 7 s: productpage gave up on reviews first,"
    )
    _say("      so the whole reviews section failed. This is the bug Istio's fault-injection task finds.")
    _expect(
        view.reviews_error is not None and 5.0 <= view.elapsed < 7.0, "jason should lose reviews after ~6 s"
    )
    _say(
        "      The fix is to make the timeouts agree: reviews v3 waits only 2.5 s for ratings, so with it the"
    )
    _say("      page would lose just the stars.")


def _abort(app: Bookinfo) -> None:
    view = app.page("jason")
    anon = app.page()
    _say(f"   jason: {view.describe()} (after {view.elapsed:.2f} s)")
    _say(f"   anonymous: {anon.describe()}")
    _say("   -> the mesh in reviews answered the ratings call itself with the error; ratings never saw it")
    _expect(
        view.ratings_error is not None and view.reviews_version == "v2",
        "jason should see ratings unavailable",
    )


def _timeout(app: Bookinfo) -> None:
    view = app.page()
    _say(f"   after {view.elapsed:.2f} s: {view.describe()}")
    _say("   -> ratings takes 2 s, the route to reviews allows 0.5 s; productpage tried twice, so about 1 s")
    _expect(view.reviews_error is not None and view.elapsed < 1.9, "reviews should time out in about 1 s")


def _circuit_breaker(app: Bookinfo) -> None:
    pp = app.workload("productpage-v1")

    def overflows() -> float:
        return app.metric_total(
            pp,
            "istio_requests_total",
            reporter="source",
            destination_service_name="details",
            response_flags="UO",
        )

    for concurrency in (1, 5):
        before = overflows()
        views = app.pages(40, concurrency=concurrency)
        failed = sum(1 for v in views if v.details_error)
        _say(
            f"   40 page loads, {concurrency} at a time: details unavailable on {failed}; "
            f'productpage\'s metrics: {overflows() - before:.0f} calls to details with response_flags="UO"'
        )
        if concurrency > 1:
            _expect(overflows() > before, "concurrent loads should overflow details' connection pool")
    _say("   -> beyond 1 connection + 1 pending request, calls fail fast with 503 UO instead of piling up")


def _mirror(app: Bookinfo) -> None:
    v2 = app.workload("reviews-v2")
    before = app.metric_total(v2, "istio_requests_total", reporter="destination")
    views = app.pages(20)
    time.sleep(0.3)  # mirrored copies are fire-and-forget
    mirrored = app.metric_total(v2, "istio_requests_total", reporter="destination") - before
    _say(f"   20 page loads: {_shares_text(views)}; reviews v2 served {mirrored:.0f} mirrored copies")
    _say("   -> users only ever see v1; v2 gets real traffic to prove itself, its answers are dropped")
    _expect(shares(views) == {"v1": 20} and mirrored >= 18, f"mirroring: {shares(views)}, v2 saw {mirrored}")


SCENARIOS = [
    Scenario("No routing rules", "Bookinfo as first deployed", [DR], _no_rules),
    Scenario("Route all traffic to v1", "request routing", [DR, ALL_V1], _all_v1),
    Scenario("User jason to reviews v2", "request routing", [DR, ALL_V1, JASON_V2], _jason),
    Scenario(
        "50/50 between reviews v1 and v3", "traffic shifting", [DR, ALL_V1, "reviews-50-v3.yaml"], _fifty
    ),
    Scenario("100 % to reviews v3", "traffic shifting", [DR, ALL_V1, "reviews-v3.yaml"], _all_v3),
    Scenario(
        "7 s delay on ratings for jason",
        "fault injection",
        [DR, ALL_V1, JASON_V2, "ratings-delay-jason.yaml"],
        _delay,
    ),
    Scenario(
        "Abort ratings for jason",
        "fault injection",
        [DR, ALL_V1, JASON_V2, "ratings-abort-jason.yaml"],
        _abort,
    ),
    Scenario("0.5 s timeout on reviews", "request timeouts", [DR, ALL_V1, "reviews-timeout.yaml"], _timeout),
    Scenario(
        "Circuit breaking on details",
        "circuit breaking",
        [DR, "details-circuit-breaker.yaml", ALL_V1],
        _circuit_breaker,
    ),
    Scenario("Mirror reviews v1 traffic to v2", "mirroring", [DR, ALL_V1, "reviews-mirror-v2.yaml"], _mirror),
]


def _busy(ports: Ports) -> list[int]:
    busy = []
    for port in (getattr(ports, name) for name in ports.__dataclass_fields__):
        with socket.socket() as s:
            # As the servers do: connections of an earlier run in TIME_WAIT must not count as in use.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def _where(app: Bookinfo) -> None:
    _say(f"   productpage:  {app.base_url}/productpage")
    for w in app.workloads:
        _say(f"   {w.name:<14} metrics {app.metrics_url(w):<36} status {app.status_url(w)}")
    _say(f"   configuration (hot-reloaded): {app.config_dir}/   logs: {app.log_dir}/")
    _say(f"   read a status: .venv/bin/libmesh status {app.status_url(app.workload('productpage-v1'))}")


def tour(app: Bookinfo) -> int:
    """Run every scenario; the number that failed."""
    failed = 0
    for i, s in enumerate(SCENARIOS, 1):
        _say(f"\n== {i}. {s.title}   (Istio task: {s.task})")
        try:
            took = app.apply(s.files)
            _say(f"   applied {' + '.join(s.files)}: every service serves it after {took:.2f} s")
            s.show(app)
        except TourFailed as e:
            failed += 1
            _say(f"   !! not as expected: {e}")
    return failed


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="run the tour and exit")
    parser.add_argument(
        "--consul", nargs="?", const="in-process", metavar="HOST:PORT", help="endpoints from Consul"
    )
    options = parser.parse_args(argv)
    # A SIGTERM (a script's timeout, `kill`) stops the demo as Ctrl-C does: the services are stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    ports = Ports.from_env()
    busy = _busy(ports)
    if busy:
        _say(f"ports {busy} on 127.0.0.1 are in use (is a demo already running?); choose others with")
        _say(
            "BOOKINFO_PORTS=productpage=19080,details=19081,reviews_v1=19082,... (see examples/bookinfo_py/topology.py)"
        )
        return 2
    with contextlib.ExitStack() as stack:
        consul = options.consul
        if consul == "in-process":
            from libmesh.testing import ConsulServer

            consul = stack.enter_context(ConsulServer()).http_addr
            _say(f"Consul: in-process libmesh.testing.ConsulServer at {consul}")
        elif consul:
            _say(f"Consul: the agent at {consul}")
        _say("Starting Bookinfo: productpage (FastAPI), details (Flask), reviews v1/v2/v3 (FastAPI),")
        _say("ratings (grpc.aio), each its own process on 127.0.0.1 ...")
        started = time.monotonic()
        app = stack.enter_context(Bookinfo(RUN_DIR, ports, consul=consul))
        discovery = "Consul" if consul else "ServiceEntry + WorkloadEntry (mesh/services.yaml)"
        _say(f"   up after {time.monotonic() - started:.1f} s; endpoints from {discovery}")
        _where(app)
        _say(f"   scenario files: {NETWORKING}/")
        started = time.monotonic()
        failed = tour(app)
        _say(
            f"\nTour done in {time.monotonic() - started:.0f} s; {len(SCENARIOS) - failed}/{len(SCENARIOS)} scenarios as expected."
        )
        if options.once:
            return 1 if failed else 0
        app.apply([DR, ALL_V1, JASON_V2])
        _say(f"\nBookinfo is running with {ALL_V1} + {JASON_V2}:")
        _say(f"   open {app.base_url}/productpage and sign in as jason to see black stars;")
        _say(f"   copy a scenario into {app.config_dir}/scenario.yaml to change routing live.")
        _say("Press Ctrl-C to stop.")
        try:
            while all(p.poll() is None for p in app.processes.values()):
                time.sleep(0.5)
            _say("a service exited; see its log in " + str(app.log_dir))
            return 1
        except KeyboardInterrupt:
            # Ctrl-C reached the services too (one process group); a second one must not cut the cleanup.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _say("\nstopping ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
