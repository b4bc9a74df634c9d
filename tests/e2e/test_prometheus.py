"""Real Prometheus (Debian's ``prometheus``) scraping the six Bookinfo processes on loopback, answering the
PromQL an Istio user would type for the reviews split."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from examples.bookinfo_py.launcher import Bookinfo, shares
from examples.bookinfo_py.topology import Ports

from .conftest import need_program

QUERY = (
    'sum by (destination_version) (istio_requests_total{reporter="destination",destination_app="reviews"})'
)


def _free_port() -> int:
    return Ports.free().productpage


@pytest.fixture
def fresh_bookinfo(tmp_path: Path) -> Iterator[Bookinfo]:
    """A Bookinfo of its own, so that the test knows every request reviews ever served."""
    with Bookinfo(tmp_path / "bookinfo", Ports.free()) as app:
        yield app


def _start_prometheus(binary: str, directory: Path, app: Bookinfo) -> tuple[subprocess.Popen[bytes], str]:
    targets = ", ".join(f"'127.0.0.1:{app.http_port(w)}'" for w in app.workloads)
    config = directory / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "- job_name: bookinfo\n"
        f"  static_configs: [{{targets: [{targets}]}}]\n"
    )
    port = _free_port()
    log = (directory / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30.0
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {(directory / 'prometheus.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("prometheus did not become ready in 30 s")
        time.sleep(0.2)


def _query(url: str) -> dict[str, float]:
    res = httpx.get(f"{url}/api/v1/query", params={"query": QUERY}, timeout=5.0).json()
    assert res["status"] == "success", res
    return {r["metric"].get("destination_version", ""): float(r["value"][1]) for r in res["data"]["result"]}


def test_prometheus_sees_the_split_the_test_drove(fresh_bookinfo: Bookinfo, tmp_path: Path) -> None:
    binary = need_program("prometheus", "/usr/bin/prometheus")
    app = fresh_bookinfo
    app.apply(["destination-rules.yaml", "route-all-v1.yaml", "reviews-50-v3.yaml"])
    proc, url = _start_prometheus(binary, tmp_path, app)
    try:
        views = app.pages(200)
        drove = {k: float(v) for k, v in shares(views).items()}
        assert set(drove) == {"v1", "v3"} and 60 <= drove["v3"] <= 140, drove
        deadline = time.monotonic() + 20.0
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            seen = _query(url)
            if seen == drove:
                break
            time.sleep(0.5)
        assert seen == drove
        # Every process is scraped, ratings' separate HTTP server included (each target's first scrape
        # comes at its own offset, so some may still be pending).
        up = 0.0
        while time.monotonic() < deadline:
            result = httpx.get(f"{url}/api/v1/query", params={"query": "sum(up)"}, timeout=5.0).json()
            up = float(result["data"]["result"][0]["value"][1]) if result["data"]["result"] else 0.0
            if up == len(app.workloads):
                break
            time.sleep(0.5)
        assert up == len(app.workloads)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
