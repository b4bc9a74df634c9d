"""Runs the Bookinfo example: six processes on 127.0.0.1, one configuration directory they all watch, and
scenarios applied to it the way ``kubectl apply`` applies Istio's sample files. The demo and the end-to-end
tests both drive it::

    with Bookinfo(run_dir, Ports()) as app:                 # starts everything, waits until it serves
        app.apply(["destination-rules.yaml", "route-all-v1.yaml", "jason-v2.yaml"])
        view = app.page(user="jason")                       # what the browser would show
        assert view.reviews_version == "v2" and view.star_color == "black"

:meth:`Bookinfo.apply` writes one file, ``scenario.yaml``, atomically, then waits until every service's status
endpoint reports a new configuration version: traffic sent after it returns sees the new rules everywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from .runtime import SPANS_ENV, STATUS_PATH
from .topology import NETWORKING, Ports, Workload, mesh_yaml, services_yaml, workloads

__all__ = ["Bookinfo", "PageView", "compose", "parse_page"]

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_FILE = "scenario.yaml"


def compose(files: Sequence[str | Path], base: Path = NETWORKING) -> str:
    """The YAML documents of ``files`` (names relative to ``base``), later documents replacing earlier ones
    of the same kind, namespace and name, as successive ``kubectl apply`` runs would leave them."""
    docs: dict[tuple[str, str, str], str] = {}
    for f in files:
        path = base / f
        for text in re.split(r"^---\s*$", path.read_text(), flags=re.M):
            data = yaml.safe_load(text)
            if not isinstance(data, dict):
                continue
            meta = data.get("metadata") or {}
            key = (str(data.get("kind")), str(meta.get("namespace", "default")), str(meta.get("name")))
            docs.pop(key, None)  # re-inserted last: the order stays that of application
            docs[key] = f"# from {Path(f).name}\n{text.strip()}\n"
    header = (
        "# Applied by examples/bookinfo_py/launcher.py: " + " + ".join(Path(f).name for f in files) + "\n"
    )
    return header + "---\n".join(docs.values())


@dataclass(frozen=True)
class PageView:
    """What a user sees on /productpage: which reviews version answered, the stars, and any error."""

    status: int
    reviews_version: str | None
    star_color: str | None
    stars: tuple[int, ...]
    reviews_error: str | None
    ratings_error: str | None
    details_error: str | None
    user: str | None
    elapsed: float

    def describe(self) -> str:
        """One line, as a person would say it."""
        if self.reviews_error:
            return f"reviews section: {self.reviews_error!r}"
        what = f"reviews {self.reviews_version}"
        if self.ratings_error:
            what += f", {self.ratings_error!r}"
        elif self.star_color:
            what += f", {self.star_color} stars"
        else:
            what += ", no stars"
        if self.details_error:
            what += f"; details: {self.details_error!r}"
        return what


def _text(pattern: str, page: str) -> str | None:
    m = re.search(pattern, page, flags=re.S)
    return re.sub(r"<[^>]+>", "", m.group(1)).strip() if m else None


def parse_page(status: int, page: str, elapsed: float = 0.0) -> PageView:
    """Read a productpage HTML answer (the markers productpage writes for scripts)."""
    version = _text(r'data-reviews-version="([^"]*)"', page)
    colors = re.findall(r'class="stars" data-stars="\d" data-color="(\w+)"', page)
    stars = tuple(int(s) for s in re.findall(r'class="stars" data-stars="(\d)"', page))
    return PageView(
        status=status,
        reviews_version=None if version in (None, "none") else version,
        star_color=colors[0] if colors else None,
        stars=stars,
        reviews_error=_text(r'<section id="reviews"[^>]*data-error[^>]*>.*?<p>(.*?)</p>', page),
        ratings_error=_text(r'class="ratings-unavailable"[^>]*>(.*?)</p>', page),
        details_error=_text(r'<section id="details"[^>]*data-error[^>]*>.*?<p>(.*?)</p>', page),
        user=_text(r'<span id="user">signed in as <b>(.*?)</b>', page),
        elapsed=elapsed,
    )


class Bookinfo:
    """The running example (see the module docstring). ``consul`` (``host:port``) runs it on Consul instead of
    WorkloadEntries; ``spans_dir`` makes every service write its spans there (JSON lines)."""

    def __init__(
        self,
        run_dir: Path,
        ports: Ports | None = None,
        *,
        consul: str | None = None,
        spans_dir: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config_dir = self.run_dir / "config"
        self.log_dir = self.run_dir / "logs"
        self.ports = ports or Ports()
        self.consul = consul
        self.spans_dir = spans_dir
        self.python = python
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.client = httpx.Client(timeout=30.0)
        self.applied: list[str] = []

    # --- processes ----------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The productpage's address."""
        return f"http://127.0.0.1:{self.ports.productpage}"

    def http_port(self, w: Workload) -> int:
        """The HTTP port of a workload's ``/metrics`` and status endpoint."""
        return self.ports.ratings_http if w.app == "ratings" else w.port

    def metrics_url(self, w: Workload) -> str:
        """Where a workload's Prometheus metrics are."""
        return f"http://127.0.0.1:{self.http_port(w)}/metrics"

    def status_url(self, w: Workload) -> str:
        """Where a workload's mesh status is."""
        return f"http://127.0.0.1:{self.http_port(w)}{STATUS_PATH}"

    @property
    def workloads(self) -> list[Workload]:
        """Every process, callees first."""
        return workloads(self.ports)

    def workload(self, name: str) -> Workload:
        """The workload named ``<app>-<version>``."""
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)

    def start(self, timeout: float = 60.0) -> Bookinfo:
        """Write the configuration, start every process and wait until each answers on its status endpoint."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.config_dir.glob("*.yaml"):
            stale.unlink()
        (self.config_dir / "mesh.yaml").write_text(mesh_yaml())
        (self.config_dir / "services.yaml").write_text(
            services_yaml(self.ports, with_endpoints=self.consul is None)
        )
        self._write(compose(["destination-rules.yaml"]))
        self.applied = ["destination-rules.yaml"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        if self.spans_dir is not None:
            env[SPANS_ENV] = str(self.spans_dir)
        for w in self.workloads:
            args = [self.python, "-m", f"examples.bookinfo_py.{w.app}", "--config", str(self.config_dir)]
            args += ["--port", str(w.port), "--version", w.version]
            if w.app == "ratings":
                args += ["--http-port", str(self.ports.ratings_http)]
            if self.consul:
                args += ["--consul", self.consul]
            log = (self.log_dir / f"{w.name}.log").open("wb")
            self.processes[w.name] = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            log.close()
        deadline = time.monotonic() + timeout
        for w in self.workloads:
            while True:
                self._check_alive(w)
                with contextlib.suppress(httpx.HTTPError):
                    if self.client.get(self.status_url(w), timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{w.name} did not start within {timeout:.0f} s:\n{self.log_tail(w.name)}"
                    )
                time.sleep(0.1)
        if self.consul:
            self._wait_for_consul(deadline)
        return self

    def _wait_for_consul(self, deadline: float) -> None:
        # Every service must see every instance before traffic starts: ask productpage through reviews v2.
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if "reviews" in self.client.get(f"{self.base_url}/productpage", timeout=5.0).text:
                    return
            time.sleep(0.2)

    def _check_alive(self, w: Workload) -> None:
        proc = self.processes[w.name]
        if proc.poll() is not None:
            raise RuntimeError(f"{w.name} exited with {proc.returncode}:\n{self.log_tail(w.name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The end of a process's log."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 5 s)."""
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        end = time.monotonic() + 5.0
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        self.client.close()

    def __enter__(self) -> Bookinfo:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- configuration ------------------------------------------------------------------------------------

    def status(self, w: Workload) -> dict[str, Any]:
        """A workload's status document."""
        data: dict[str, Any] = self.client.get(self.status_url(w), timeout=5.0).json()
        return data

    def version(self, w: Workload) -> str:
        """The configuration version a workload serves, from its status endpoint."""
        return str(self.status(w)["config"]["version"])

    def versions(self) -> dict[str, str]:
        """The configuration version each workload serves."""
        return {w.name: self.version(w) for w in self.workloads}

    def _write(self, text: str) -> None:
        tmp = self.config_dir / f".{SCENARIO_FILE}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.config_dir / SCENARIO_FILE)

    def apply(self, files: Sequence[str], timeout: float = 15.0) -> float:
        """Apply ``files`` of networking/ (kubectl-apply style) in place of the current scenario and wait until
        every service serves it: until each status endpoint reports the version of the new configuration.
        Returns the seconds that took."""
        started = time.monotonic()
        self._write(compose(files))
        self.applied = list(files)
        expected = _version_of(self.config_dir)
        pending = {w.name for w in self.workloads}
        while True:
            pending = {name for name in pending if self.version(self.workload(name)) != expected}
            if not pending:
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(
                    f"{sorted(pending)} did not load {' + '.join(files)} within {timeout:.0f} s"
                )
            time.sleep(0.05)
        return time.monotonic() - started

    # --- traffic ------------------------------------------------------------------------------------------

    def page(self, user: str | None = None, client: httpx.Client | None = None) -> PageView:
        """Load /productpage as ``user`` (the session cookie the login form sets) or anonymously."""
        c = client or self.client
        # The cookie productpage's login form sets (per request: the client may be shared between users).
        headers = {"cookie": f"session={user}"} if user else None
        started = time.monotonic()
        res = c.get(f"{self.base_url}/productpage", headers=headers)
        return parse_page(res.status_code, res.text, time.monotonic() - started)

    def pages(self, count: int, user: str | None = None, concurrency: int = 4) -> list[PageView]:
        """``count`` page loads, ``concurrency`` at a time."""
        from concurrent.futures import ThreadPoolExecutor

        limits = httpx.Limits(max_connections=concurrency)
        with httpx.Client(timeout=30.0, limits=limits) as c, ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda _: self.page(user, c), range(count)))

    def metrics(self, w: Workload) -> str:
        """A workload's Prometheus exposition."""
        return self.client.get(self.metrics_url(w), timeout=5.0).text

    def metric_total(self, w: Workload, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``, from ``w``'s /metrics."""
        return sum_samples(self.metrics(w), name, labels)


def _version_of(config_dir: Path) -> str:
    """The version libmesh gives the configuration in ``config_dir``: what each service reports once it
    serves it."""
    from libmesh.config import load_paths
    from libmesh.reload import config_version

    return config_version(load_paths([config_dir]))


def sum_samples(exposition: str, name: str, labels: Mapping[str, str]) -> float:
    """Sum the samples named ``name`` in a Prometheus text exposition whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def shares(views: Sequence[PageView]) -> dict[str, int]:
    """How many page loads each reviews version answered (``error`` for a failed reviews section)."""
    out: dict[str, int] = {}
    for v in views:
        key = v.reviews_version or "error"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


@contextlib.contextmanager
def running(run_dir: Path, ports: Ports | None = None, **kwargs: Any) -> Iterator[Bookinfo]:
    """:class:`Bookinfo` as a context manager function."""
    with Bookinfo(run_dir, ports, **kwargs) as app:
        yield app


def _die_with_parent() -> None:
    """In the child, before it runs: have Linux send it SIGTERM when the launcher dies, however it dies
    (SIGKILL, a crash), so no service is left holding its port. Elsewhere: nothing (stop() still cleans up
    after an orderly exit)."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
