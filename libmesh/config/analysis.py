"""Cross-resource findings, as ``istioctl analyze`` reports them: things no single resource shows.

- a VirtualService destination names a subset that no DestinationRule for that host defines (IST0101);
- two VirtualServices bound to the mesh claim the same host: only the oldest takes effect (IST0109);
- two DestinationRules for the same host in one namespace define the same subset: the first wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from ..errors import ConfigIssue, Severity
from .loader import ConfigSet, Document
from .resources import DestinationRule, VirtualService

__all__ = ["analyze"]


def _fqdn(host: str, namespace: str) -> str:
    h = host.lower()
    if "." in h or h == "*":
        return h
    return f"{h}.{namespace}.svc.cluster.local"


def analyze(config: ConfigSet, *, namespace: str = "default") -> list[ConfigIssue]:
    """Warnings that need more than one resource to see (never errors: each resource is valid alone)."""
    return list(_subsets(config, namespace)) + list(_vs_conflicts(config, namespace))


def _warn(doc: Document, path: str, message: str, namespace: str) -> ConfigIssue:
    res = doc.resource
    line = doc.line_of(path) if doc.file is not None else None
    return ConfigIssue(
        Severity.WARNING, message, path, doc.file, line, res.KIND, res.namespace or namespace, res.name
    )


def _subsets(config: ConfigSet, namespace: str) -> Iterator[ConfigIssue]:
    defined: dict[str, set[str]] = defaultdict(set)
    seen_in_ns: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for doc in config.documents:
        dr = doc.resource
        if not isinstance(dr, DestinationRule):
            continue
        ns = dr.namespace or namespace
        host = _fqdn(dr.spec.host or "", ns)
        for i, subset in enumerate(dr.spec.subsets):
            if not subset.name:
                continue
            defined[host].add(subset.name)
            owner = seen_in_ns[(ns, host)].get(subset.name)
            if owner is not None and owner != dr.name:
                yield _warn(
                    doc,
                    f"spec.subsets[{i}].name",
                    f'subset "{subset.name}" is also defined by DestinationRule {ns}/{owner}; the first one wins',
                    namespace,
                )
            else:
                seen_in_ns[(ns, host)][subset.name] = dr.name
    for doc in config.documents:
        vs = doc.resource
        if not isinstance(vs, VirtualService):
            continue
        ns = vs.namespace or namespace
        for i, http in enumerate(vs.spec.http):
            targets = [
                (f"spec.http[{i}].route[{j}].destination", r.destination) for j, r in enumerate(http.route)
            ]
            if http.mirror is not None:
                targets.append((f"spec.http[{i}].mirror", http.mirror))
            targets += [
                (f"spec.http[{i}].mirrors[{j}].destination", m.destination)
                for j, m in enumerate(http.mirrors)
            ]
            for path, dest in targets:
                if dest is None or not dest.subset:
                    continue
                host = _fqdn(dest.host or "", ns)
                if dest.subset not in defined.get(host, set()):
                    yield _warn(
                        doc,
                        f"{path}.subset",
                        f'referenced subset "{dest.subset}" of host {host} is not defined by any DestinationRule '
                        "(requests to it would fail with 503 NR)",
                        namespace,
                    )


def _vs_conflicts(config: ConfigSet, namespace: str) -> Iterator[ConfigIssue]:
    owners: dict[str, str] = {}
    for doc in config.documents:
        vs = doc.resource
        if not isinstance(vs, VirtualService):
            continue
        if vs.spec.gateways and "mesh" not in vs.spec.gateways:
            continue
        ns = vs.namespace or namespace
        for i, h in enumerate(vs.spec.hosts):
            host = _fqdn(h, ns)
            owner = owners.get(host)
            if owner is None:
                owners[host] = f"{ns}/{vs.name}"
            elif owner != f"{ns}/{vs.name}":
                yield _warn(
                    doc,
                    f"spec.hosts[{i}]",
                    f"host {host} is also claimed by VirtualService {owner}; for the mesh only the oldest "
                    "VirtualService of a host takes effect",
                    namespace,
                )
