"""Config sources the mesh follows, and hot reload with acknowledgement.

A :class:`ConfigSource` yields the Istio YAML as *units* (a file, a Consul KV key), each parsed and validated
on its own. A :class:`Reloader` follows a source on a background thread: it waits for a change, lets a
burst of changes settle (the debounce window), parses and validates every unit off the hot path, and swaps
the new config into the mesh in one step (:meth:`libmesh.Mesh.apply`). Calls already in flight finish on the
decisions they started with.

A unit with errors is rejected the way Istio's admission webhook rejects one resource: its errors are
logged with ``file:line``, ``libmesh_config_reloads_total{result="rejected"}`` counts it, and the unit's
last good version keeps serving (a unit that never had one is left out); the other units' changes still
apply. ::

    mesh = libmesh.Mesh.from_paths("mesh/", workload=...)        # watches mesh/ (watch=False to not)
    mesh.config_version                                          # '3f2a9c0d41be' (what is serving)
    mesh.reload()                                                # reload now; returns a ReloadResult

    source = ConsulKVSource(consul.Consul(host="127.0.0.1", port=8500), "libmesh/config/")
    mesh.follow(source)                                          # any source: files, Consul KV, your own
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .config.dump import resource_to_dict
from .config.loader import ConfigSet, Document, deduplicate, parse_yaml
from .errors import ConfigIssue, Severity

if TYPE_CHECKING:
    from .mesh import Mesh

__all__ = [
    "ConfigSource",
    "ConsulKVSource",
    "FileSource",
    "ReloadResult",
    "Reloader",
    "config_version",
]

log = logging.getLogger("libmesh.reload")

#: Seconds a burst of changes is given to settle before the config is read again.
DEFAULT_DEBOUNCE = 0.1
_YAML_SUFFIXES = (".yaml", ".yml")


class ConfigSource(Protocol):
    """Where config comes from. ``describe()`` names it for status pages (``files: mesh/``,
    ``consul-kv: 127.0.0.1:8500/libmesh/``); ``read()`` returns every unit as ``(name, text)`` where ``name``
    is what errors cite as the file; ``watch(changed, stop)`` blocks until ``stop`` is set and calls
    ``changed()`` whenever the source may have changed (spurious calls are harmless). A seam::

        class Inline:
            def __init__(self, text): self.text = text
            def describe(self): return "inline"
            def read(self): return [("inline.yaml", self.text)]
            def watch(self, changed, stop): stop.wait()
    """

    def describe(self) -> str: ...

    def read(self) -> Sequence[tuple[str, str]]: ...

    def watch(self, changed: Callable[[], None], stop: threading.Event) -> None: ...


class FileSource:
    """Files and directories (directories: every ``*.yaml``/``*.yml`` below them, in name order), followed
    with ``watchfiles`` (inotify on Linux). The parent directory of a named file is what is watched, so an
    editor or ``kubectl``-style tool that replaces the file by renaming a new one over it is followed too."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        if not self.paths:
            raise ValueError("FileSource needs at least one file or directory")

    def describe(self) -> str:
        """``files: a.yaml, mesh/``."""
        return "files: " + ", ".join(str(p) for p in self.paths)

    def read(self) -> Sequence[tuple[str, str]]:
        """Every file's text. A file that cannot be read becomes a unit that :func:`parse_units` rejects
        (so its last good version serves); a file deleted inside a followed directory takes its resources
        with it; a followed path that is gone raises ``FileNotFoundError`` (the mesh keeps its config)."""
        return [(name, text) for name, text in self._files()]

    def _files(self) -> Iterator[tuple[str, str]]:
        for path in self.paths:
            if path.is_dir():
                files = sorted(p for p in path.rglob("*") if p.suffix in _YAML_SUFFIXES and p.is_file())
            elif path.exists():
                files = [path]
            else:
                # A path the mesh was told to follow has gone (an unmounted volume, a mistyped rename):
                # rather than read that as "no config", keep serving what was loaded from it.
                raise FileNotFoundError(f"{path}: no such file or directory")
            for f in files:
                try:
                    yield str(f), f.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    yield str(f), _UNREADABLE

    def watch(self, changed: Callable[[], None], stop: threading.Event) -> None:
        """Call ``changed`` on every change under the watched paths until ``stop`` is set."""
        from watchfiles import watch

        roots = sorted({str(p if p.is_dir() else p.parent) for p in self.paths})
        wanted = {str(p.resolve()) for p in self.paths if not p.is_dir()}
        dirs = [str(p.resolve()) for p in self.paths if p.is_dir()]

        def relevant(_change: Any, path: str) -> bool:
            resolved = str(Path(path).resolve())
            return resolved in wanted or any(resolved.startswith(d + os.sep) or resolved == d for d in dirs)

        # watchfiles' own debounce is kept short: the Reloader coalesces bursts with its own window.
        for _ in watch(
            *roots, watch_filter=relevant, stop_event=stop, debounce=50, step=20, yield_on_timeout=False
        ):
            changed()


class ConsulKVSource:
    """Istio YAML under a Consul KV prefix (each key one unit, in key order; keys ending in ``/`` are
    folders and skipped), followed with Consul's blocking queries. ``client`` is a ``py-consul``
    ``consul.Consul``. While Consul cannot be reached, the source retries with back-off and the mesh keeps
    the config it has."""

    def __init__(self, client: Any, prefix: str, *, wait: str = "30s", retry_max: float = 5.0) -> None:
        self.client = client
        self.prefix = prefix
        self._wait = wait
        self._retry_max = retry_max
        self._index: int | None = None
        #: The last error reaching Consul, or ``None`` once it answers again.
        self.last_error: str | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConsulKVSource:
        """The source a ``consul-kv://HOST:PORT/PREFIX`` URL names (``consul-kvs://`` for HTTPS); the token
        comes from ``CONSUL_HTTP_TOKEN``, as for every Consul tool."""
        import consul  # type: ignore[import-untyped]

        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("consul-kv", "consul-kvs"):
            raise ValueError(f"not a consul-kv:// URL: {url!r}")
        address, _, prefix = rest.partition("/")
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "8500")
        if not host or not port.isdigit():
            raise ValueError(f"consul-kv URL needs HOST:PORT: {url!r}")
        client = consul.Consul(
            host=host,
            port=int(port),
            scheme="https" if scheme == "consul-kvs" else "http",
            token=os.environ.get("CONSUL_HTTP_TOKEN"),
        )
        return cls(client, prefix, **kwargs)

    def describe(self) -> str:
        """``consul-kv: HOST:PORT/prefix``."""
        http = getattr(self.client, "http", None)
        base = getattr(http, "base_uri", None) or "consul"
        return f"consul-kv: {base}/{self.prefix}"

    def read(self) -> Sequence[tuple[str, str]]:
        """Every key's value under the prefix (raises the client's error when Consul is unreachable)."""
        _, items = self.client.kv.get(self.prefix, recurse=True)
        return _kv_units(self.prefix, items)

    def watch(self, changed: Callable[[], None], stop: threading.Event) -> None:
        """Follow the prefix with blocking queries until ``stop`` is set; ``changed`` on each new index."""
        failures = 0
        index: int | None = None
        while not stop.is_set():
            try:
                new_index, _ = self.client.kv.get(self.prefix, recurse=True, index=index, wait=self._wait)
            except Exception as e:  # unreachable, 5xx...: keep serving, retry with back-off
                failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
                stop.wait(min(self._retry_max, 0.05 * 2 ** min(failures, 8)))
                if failures == 1:
                    changed()  # what was missed while away is read again once Consul answers
                continue
            failures = 0
            self.last_error = None
            new = int(new_index) if new_index is not None else 0
            moved = index is not None and new != index
            # Consul's rules for blocking queries: never wait on index 0, and an index that goes backwards
            # means the store was reset, so the next query starts over without one.
            index = new if new > 0 and (index is None or new >= index) else None
            if moved:
                changed()


def _kv_units(prefix: str, items: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, str]]:
    units = []
    for item in sorted(items or (), key=lambda i: str(i.get("Key", ""))):
        key = str(item.get("Key", ""))
        if key.endswith("/"):
            continue
        raw = item.get("Value")
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = _UNREADABLE
        else:
            text = raw or ""
        units.append((f"consul-kv:{key}", text))
    return units


# A unit whose text could not be read: parse_units reports it as an error of that unit.
_UNREADABLE = "\0unreadable"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What one reload did. ``applied``: a new config is serving (``version`` is its version);
    ``rejected``: the units whose errors kept their previous version serving; ``issues``: every error and
    warning found (errors name ``file:line``)."""

    applied: bool
    version: str
    rejected: tuple[str, ...] = ()
    issues: tuple[ConfigIssue, ...] = ()
    error: str | None = None

    @property
    def errors(self) -> tuple[ConfigIssue, ...]:
        """The errors among ``issues``."""
        return tuple(i for i in self.issues if i.is_error)


def config_version(config: ConfigSet) -> str:
    """The version of a config: 12 hex digits of a SHA-256 over its resources (their meaning, not their
    text: comments, key order and whitespace do not change it, and the same config read from files or from
    Consul KV has the same version on every workload)."""
    canonical = sorted(
        json.dumps(resource_to_dict(d.resource), sort_keys=True, default=str, separators=(",", ":"))
        for d in config.documents
    )
    digest = hashlib.sha256()
    for item in canonical:
        digest.update(item.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:12]


def units_by_file(config: ConfigSet) -> dict[str, ConfigSet]:
    """``config``'s documents grouped by the file they came from: the per-unit state :func:`parse_units`
    keeps, for a config loaded some other way (``load_paths``)."""
    grouped: dict[str, list[Document]] = {}
    for doc in config.documents:
        if doc.file is not None:
            grouped.setdefault(doc.file, []).append(doc)
    return {name: ConfigSet(tuple(docs)) for name, docs in grouped.items()}


def parse_units(
    units: Sequence[tuple[str, str]], *, namespace: str, last_good: Mapping[str, ConfigSet] | None = None
) -> tuple[ConfigSet, dict[str, ConfigSet], list[str]]:
    """Parse and validate each unit on its own. Returns the merged config (good units, and for a unit with
    errors its entry in ``last_good`` if any), the good parse of every unit (the next ``last_good``), and
    the names of the rejected units. The merged config's issues hold every unit's findings."""
    good: dict[str, ConfigSet] = {}
    rejected: list[str] = []
    documents: list[Document] = []
    issues: list[ConfigIssue] = []
    for name, text in units:
        if text == _UNREADABLE:
            part = ConfigSet((), (ConfigIssue(Severity.ERROR, "cannot read", file=name),))
        else:
            part = parse_yaml(text, file=name, namespace=namespace, dedupe=False)
        issues.extend(part.issues)
        if part.errors:
            rejected.append(name)
            previous = (last_good or {}).get(name)
            if previous is not None:
                good[name] = previous
                documents.extend(previous.documents)
            continue
        good[name] = part
        documents.extend(part.documents)
    return deduplicate(documents, issues, namespace=namespace), good, rejected


@dataclass(slots=True)
class ReloadState:
    """What a mesh knows about its config's history (read it through :meth:`libmesh.Mesh.status`)."""

    source: str = "static"
    version: str = ""
    last_applied: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    last_rejected: tuple[str, ...] = ()
    applied: int = 0
    rejected: int = 0
    units: dict[str, ConfigSet] = field(default_factory=dict)


class Reloader:
    """Follows ``source`` for ``mesh`` on a daemon thread (see the module docstring). ``debounce`` is the
    seconds a burst of changes is given to settle. Start it with :meth:`start`, stop it with :meth:`close`;
    :meth:`reload` reloads now, on the caller's thread."""

    def __init__(self, mesh: Mesh, source: ConfigSource, *, debounce: float = DEFAULT_DEBOUNCE) -> None:
        self.mesh = mesh
        self.source = source
        self.debounce = debounce
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Reloader:
        """Start watching (idempotent)."""
        if self._threads:
            return self
        watcher = threading.Thread(target=self._watch, name="libmesh-config-watch", daemon=True)
        applier = threading.Thread(target=self._apply_loop, name="libmesh-config-reload", daemon=True)
        self._threads = [watcher, applier]
        for t in self._threads:
            t.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop watching; the mesh keeps the config it has."""
        self._stop.set()
        self._dirty.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)

    def reload(self) -> ReloadResult:
        """Read the source, validate each unit, and apply the result if it changed anything."""
        with self._lock:
            return self._reload()

    def _watch(self) -> None:
        # A change made between the first read and the watch starting would be missed: read once more
        # shortly after (a reload that finds the same version changes nothing).
        threading.Timer(0.3, self._dirty.set).start()
        while not self._stop.is_set():
            try:
                self.source.watch(self._dirty.set, self._stop)
            except Exception:  # a watcher that dies is restarted: config must keep following the source
                log.exception("libmesh: watching %s failed; retrying", self.source.describe())
                self._stop.wait(1.0)
            else:
                if not self._stop.is_set():
                    # The watch ended by itself (its directory went away, say): look again shortly, and
                    # read the source then, since changes may have been missed meanwhile.
                    self._stop.wait(1.0)
                    self._dirty.set()

    def _apply_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.is_set():
                return
            # Let the burst settle: every change inside the window is read in one go.
            while True:
                self._dirty.clear()
                if self._stop.wait(self.debounce) or not self._dirty.is_set():
                    break
            if self._stop.is_set():
                return
            try:
                self.reload()
            except Exception:  # never let one bad reload stop the following ones
                log.exception("libmesh: reloading from %s failed", self.source.describe())

    def _reload(self) -> ReloadResult:
        mesh = self.mesh
        state = mesh.reload_state
        now = time.time()
        state.last_attempt = now
        try:
            units = self.source.read()
        except Exception as e:  # the source is unreachable: keep serving what we have
            state.last_error = f"reading {self.source.describe()}: {type(e).__name__}: {e}"
            log.warning(
                "libmesh: %s; the current config (version %s) keeps serving", state.last_error, state.version
            )
            return ReloadResult(False, state.version, error=state.last_error)
        config, good, rejected = parse_units(units, namespace=mesh.namespace, last_good=state.units)
        state.units = good
        for issue in config.errors:
            log.error("libmesh: config rejected: %s", issue)
        version = config_version(config)
        if rejected:
            state.rejected += 1
            state.last_rejected = tuple(rejected)
            first = next(iter(config.errors), None)
            state.last_error = str(first) if first is not None else "rejected"
            mesh.count_reload("rejected")
            log.warning(
                "libmesh: %d config unit(s) rejected (%s); their last good version keeps serving",
                len(rejected),
                ", ".join(rejected),
            )
        if version == state.version:
            return ReloadResult(
                False, version, tuple(rejected), config.issues, state.last_error if rejected else None
            )
        try:
            mesh.apply(ConfigSet(config.documents, tuple(i for i in config.issues if not i.is_error)))
        except Exception as e:  # compiling failed: nothing changes
            state.rejected += 1
            state.last_error = f"{type(e).__name__}: {e}"
            mesh.count_reload("rejected")
            log.exception(
                "libmesh: the new config could not be applied; version %s keeps serving", state.version
            )
            return ReloadResult(False, state.version, tuple(rejected), config.issues, state.last_error)
        state.version = version
        state.last_applied = time.time()
        state.applied += 1
        if not rejected:
            state.last_error = None
        mesh.count_reload("applied")
        log.info("libmesh: config version %s applied from %s", version, self.source.describe())
        return ReloadResult(True, version, tuple(rejected), config.issues)
