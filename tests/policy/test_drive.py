"""engine.drive and engine.drive_async: the generic steppers an adapter (or the coming sidecar) runs a plan
with. The bundled adapters step their plans inline, so these are checked here directly, on a real plan."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable

import pytest

from libmesh import Mesh
from libmesh.config import load_yaml
from libmesh.policy.engine import CallPlan, Deliver, Reply, Send, drive, drive_async
from libmesh.policy.outcome import Outcome
from libmesh.routing.call import Call

_CONFIG = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}, {address: 127.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
    retries: {attempts: 3, retryOn: 5xx}
"""


class _Upstream:
    """Answers attempts with the given statuses in turn and notes what the driver did with them."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.sent: list[Send] = []
        self.discarded: list[int] = []
        self.slept: list[float] = []

    def send(self, step: Send) -> tuple[Outcome, int]:
        self.sent.append(step)
        status = self.statuses[len(self.sent) - 1]
        return Outcome(status=status), status

    def discard(self, response: int) -> None:
        self.discarded.append(response)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _plan() -> tuple[Mesh, CallPlan]:
    mesh = Mesh(load_yaml(textwrap.dedent(_CONFIG)))
    return mesh, mesh.plan(Call(authority="reviews:9080", path="/"), body_replayable=True)


def _reply(step: Reply) -> int:
    return step.status


def _deliver(response: int, step: Deliver) -> int:
    return response


def _run_sync(plan: CallPlan, up: _Upstream) -> int:
    return drive(plan, send=up.send, reply=_reply, deliver=_deliver, discard=up.discard, sleep=up.sleep)


def _run_async(plan: CallPlan, up: _Upstream) -> int:
    async def send(step: Send) -> tuple[Outcome, int]:
        return up.send(step)

    async def discard(response: int) -> None:
        up.discard(response)

    async def sleep(seconds: float) -> None:
        up.slept.append(seconds)

    return asyncio.run(
        drive_async(plan, send=send, reply=_reply, deliver=_deliver, discard=discard, sleep=sleep)
    )


RUNNERS: list[Callable[[CallPlan, _Upstream], int]] = [_run_sync, _run_async]


@pytest.mark.parametrize("run", RUNNERS, ids=["drive", "drive_async"])
def test_a_retried_call_discards_the_failed_response_backs_off_and_delivers_the_last(
    run: Callable[[CallPlan, _Upstream], int],
) -> None:
    mesh, plan = _plan()
    up = _Upstream([503, 200])
    assert run(plan, up) == 200
    assert up.discarded == [503]
    assert len(up.slept) == 1 and 0 < up.slept[0] <= 0.25  # Envoy's back-off: 25 ms base, capped at 250 ms
    assert [s.attempt for s in up.sent] == [1, 2]
    # The retry goes to the endpoint not yet tried.
    assert up.sent[0].host != up.sent[1].host
    cluster = next(iter(mesh.clusters().values()))
    assert (cluster.active_requests, cluster.active_retries) == (0, 0)
    mesh.close()


@pytest.mark.parametrize("run", RUNNERS, ids=["drive", "drive_async"])
def test_attempts_exhausted_deliver_the_last_upstream_response(
    run: Callable[[CallPlan, _Upstream], int],
) -> None:
    mesh, plan = _plan()
    up = _Upstream([503, 503, 503, 503])
    assert run(plan, up) == 503
    assert len(up.sent) == 4 and up.discarded == [503, 503, 503]
    assert plan.response_flags == "URX"
    mesh.close()


@pytest.mark.parametrize("run", RUNNERS, ids=["drive", "drive_async"])
def test_an_error_while_sending_abandons_the_plan_and_gives_its_slots_back(
    run: Callable[[CallPlan, _Upstream], int],
) -> None:
    mesh, plan = _plan()
    up = _Upstream([503])  # the second attempt finds no status: the sender raises
    with pytest.raises(IndexError):
        run(plan, up)
    assert up.discarded == [503]
    cluster = next(iter(mesh.clusters().values()))
    assert (cluster.active_requests, cluster.active_retries) == (0, 0)
    assert plan.response_flags == "DC"  # recorded once, as Envoy records a downstream disconnect
    mesh.close()
