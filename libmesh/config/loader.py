"""Reading Istio YAML: files, directories, multi-document streams and ``kind: List``, with locations.

:func:`load_paths` is the usual entry point; it raises :class:`~libmesh.errors.ConfigError` listing every error
(each with ``FILE:LINE``) and returns a :class:`ConfigSet` whose ``issues`` keep the warnings::

    config = load_paths(["mesh/"])
    for issue in config.issues:
        print(issue)          # warning: mesh/dr.yaml:9: DestinationRule default/reviews: ...

:func:`parse_paths` does the same without raising, for tools that report (``libmesh validate``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ConfigIssue, Severity
from ._schema import Decoder, Located
from .resources import RESOURCE_KINDS, Resource
from .support import unenforced_fields
from .validation import Context, validate

__all__ = [
    "ConfigSet",
    "Document",
    "deduplicate",
    "load_paths",
    "load_resources",
    "load_yaml",
    "parse_paths",
    "parse_yaml",
]

log = logging.getLogger("libmesh.config")

_YAML_SUFFIXES = (".yaml", ".yml")
_MAX_DEPTH = 100
try:  # the C parser composes nodes several times faster; it keeps the same marks
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class Document:
    """One resource and where it came from: ``file``, the ``line`` it starts on, and each field's line."""

    resource: Resource
    file: str | None = None
    line: int | None = None
    lines: Mapping[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        """The line of field ``path``, or of its nearest written ancestor."""
        p = path
        while p:
            line = self.lines.get(p)
            if line is not None:
                return line
            cut = max(p.rfind("."), p.rfind("["))
            if cut <= 0:
                break
            p = p[:cut]
        return self.line


@dataclass(frozen=True, slots=True)
class ConfigSet:
    """An immutable, validated set of resources plus the warnings found while loading them."""

    documents: tuple[Document, ...] = ()
    issues: tuple[ConfigIssue, ...] = ()

    @property
    def resources(self) -> tuple[Resource, ...]:
        """Every resource, in load order."""
        return tuple(d.resource for d in self.documents)

    def of_kind(self, cls: type[Any]) -> list[Any]:
        """The resources of one kind, e.g. ``config.of_kind(VirtualService)``."""
        return [d.resource for d in self.documents if type(d.resource) is cls]

    @property
    def errors(self) -> tuple[ConfigIssue, ...]:
        """The errors among ``issues`` (empty for a set returned by :func:`load_paths`)."""
        return tuple(i for i in self.issues if i.is_error)

    @property
    def warnings(self) -> tuple[ConfigIssue, ...]:
        """The warnings among ``issues``."""
        return tuple(i for i in self.issues if not i.is_error)


def load_paths(paths: Iterable[str | os.PathLike[str]], *, namespace: str = "default") -> ConfigSet:
    """Load and validate files and directories; raise :class:`ConfigError` if any error is found."""
    result = parse_paths(paths, namespace=namespace)
    if result.errors:
        raise ConfigError(result.issues)
    return result


def load_yaml(text: str, *, file: str = "<string>", namespace: str = "default") -> ConfigSet:
    """Load and validate YAML text; raise :class:`ConfigError` if any error is found."""
    result = parse_yaml(text, file=file, namespace=namespace)
    if result.errors:
        raise ConfigError(result.issues)
    return result


def load_resources(resources: Iterable[Resource], *, namespace: str = "default") -> ConfigSet:
    """Validate resources built in Python; raise :class:`ConfigError` if any error is found."""
    docs: list[Document] = []
    issues: list[ConfigIssue] = []
    for res in resources:
        doc = Document(res)
        docs.append(doc)
        issues.extend(_check(doc, namespace))
    result = ConfigSet(tuple(docs), tuple(issues))
    if result.errors:
        raise ConfigError(result.issues)
    return result


def parse_paths(paths: Iterable[str | os.PathLike[str]], *, namespace: str = "default") -> ConfigSet:
    """Like :func:`load_paths` but never raises for bad config: errors are in the result's ``issues``."""
    docs: list[Document] = []
    issues: list[ConfigIssue] = []
    for file in _expand(paths, issues):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            issues.append(ConfigIssue(Severity.ERROR, f"cannot read: {e}", file=file))
            continue
        part = parse_yaml(text, file=file, namespace=namespace, dedupe=False)
        docs.extend(part.documents)
        issues.extend(part.issues)
    return deduplicate(docs, issues, namespace=namespace)


def deduplicate(
    documents: Iterable[Document], issues: Iterable[ConfigIssue] = (), *, namespace: str = "default"
) -> ConfigSet:
    """The documents with one resource per kind, namespace and name: the last one wins, as it would after
    ``kubectl apply`` of them all in order (the API server keeps one object per name). Each one overridden
    is reported as a warning naming both places, so two files defining ``reviews`` never both route."""
    kept: dict[tuple[str, str, str], Document] = {}
    found = list(issues)
    for doc in documents:
        meta = doc.resource.metadata
        key = (type(doc.resource).__name__, meta.namespace or namespace, meta.name or "")
        earlier = kept.pop(key, None)
        if earlier is not None and key[2]:
            where = f"{earlier.file}:{earlier.line}" if earlier.line is not None else str(earlier.file)
            found.append(
                ConfigIssue(
                    Severity.WARNING,
                    f"{key[0]} {key[1]}/{key[2]} is defined again here and replaces the one at {where}",
                    file=doc.file,
                    line=doc.line,
                    kind=key[0],
                    namespace=key[1],
                    name=key[2],
                )
            )
        kept[key] = doc
    return ConfigSet(tuple(kept.values()), tuple(found))


def parse_yaml(
    text: str, *, file: str = "<string>", namespace: str = "default", dedupe: bool = True
) -> ConfigSet:
    """Parse YAML text into a :class:`ConfigSet` without raising for bad config. A resource defined twice
    keeps its last definition (see :func:`deduplicate`); ``dedupe=False`` keeps both, for callers merging
    several texts that dedupe the result."""
    docs: list[Document] = []
    issues: list[ConfigIssue] = []
    try:
        nodes = _compose_all(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (e.context, e.problem) if x)
        issues.append(ConfigIssue(Severity.ERROR, f"invalid YAML: {msg}", file=file, line=line))
        return ConfigSet((), tuple(issues))
    except yaml.reader.ReaderError as e:  # a character YAML forbids; it carries a position, not a mark
        line = text.count("\n", 0, e.position) + 1
        code = e.character if isinstance(e.character, int) else ord(e.character)
        msg = f"invalid YAML: character U+{code:04X} is not allowed ({e.reason})"
        issues.append(ConfigIssue(Severity.ERROR, msg, file=file, line=line))
        return ConfigSet((), tuple(issues))
    except UnicodeEncodeError as e:  # a lone surrogate, which cannot be encoded for the C parser
        line = e.object.count("\n", 0, e.start) + 1
        msg = (
            f"invalid YAML: character U+{ord(e.object[e.start]):04X} is not allowed (not valid Unicode text)"
        )
        issues.append(ConfigIssue(Severity.ERROR, msg, file=file, line=line))
        return ConfigSet((), tuple(issues))
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        issues.append(ConfigIssue(Severity.ERROR, f"invalid YAML: {e}", file=file))
        return ConfigSet((), tuple(issues))
    for node in nodes:
        for item in _items(node, file, issues):
            doc = _decode_document(item, file, issues, namespace)
            if doc is not None:
                docs.append(doc)
                issues.extend(_check(doc, namespace))
    if dedupe:
        return deduplicate(docs, issues, namespace=namespace)
    return ConfigSet(tuple(docs), tuple(issues))


def _compose_all(text: str) -> list[yaml.Node]:
    """Compose every document. Kubernetes' YAML parser reads a plain scalar with colons inside a flow
    sequence (``[1.2.3.4, 2001:db8::]``) as a string where libyaml stops with "found unexpected ':'"; such
    a scalar is quoted in place (same line and column) and parsing is retried."""
    for _ in range(64):
        try:
            return list(yaml.compose_all(text, Loader=_Loader))
        except yaml.scanner.ScannerError as e:
            fixed = _quote_flow_scalar(text, e) if e.problem and "unexpected ':'" in e.problem else None
            if fixed is None:
                raise
            text = fixed
    return list(yaml.compose_all(text, Loader=_Loader))


def _quote_flow_scalar(text: str, e: yaml.MarkedYAMLError) -> str | None:
    mark = e.context_mark or e.problem_mark
    if mark is None:
        return None
    lines = text.split("\n")
    line = lines[mark.line]
    start = mark.column
    while start > 0 and line[start - 1] not in "[{,":
        start -= 1
    end = mark.column
    while end < len(line) and line[end] not in "]},":
        end += 1
    token = line[start:end].strip()
    if not token or token[0] in "'\"" or "'" in token:
        return None
    lead = len(line[start:end]) - len(line[start:end].lstrip())
    lines[mark.line] = f"{line[: start + lead]}'{token}'{line[start + lead + len(token) :]}"
    return "\n".join(lines)


def _expand(paths: Iterable[str | os.PathLike[str]], issues: list[ConfigIssue]) -> Iterator[str]:
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix in _YAML_SUFFIXES and f.is_file())
            if not found:
                log.debug("%s: no *.yaml or *.yml files", p)
            yield from found
        elif p.is_file():
            yield str(p)
        else:
            issues.append(ConfigIssue(Severity.ERROR, "no such file or directory", file=str(p)))


def _mapping_get(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            found: yaml.Node = v
            return found
    return None


def _scalar_str(node: yaml.Node | None) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        return str(node.value)
    return None


def _items(node: yaml.Node, file: str, issues: list[ConfigIssue]) -> Iterator[yaml.MappingNode]:
    """Yield resource nodes, expanding ``kind: List``."""
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        return  # an empty document
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        issues.append(ConfigIssue(Severity.ERROR, "a document must be a mapping", file=file, line=line))
        return
    if _scalar_str(_mapping_get(node, "kind")) == "List" and _mapping_get(node, "items") is not None:
        items = _mapping_get(node, "items")
        if not isinstance(items, yaml.SequenceNode):
            issues.append(ConfigIssue(Severity.ERROR, "items: must be a list", file=file, line=line))
            return
        for item in items.value:
            yield from _items(item, file, issues)
        return
    yield node


def _decode_document(
    node: yaml.MappingNode, file: str, issues: list[ConfigIssue], default_namespace: str
) -> Document | None:
    line = node.start_mark.line + 1
    kind = _scalar_str(_mapping_get(node, "kind"))
    api_version = _scalar_str(_mapping_get(node, "apiVersion"))
    meta = _mapping_get(node, "metadata")
    name = _scalar_str(_mapping_get(meta, "name")) if isinstance(meta, yaml.MappingNode) else None
    namespace = _scalar_str(_mapping_get(meta, "namespace")) if isinstance(meta, yaml.MappingNode) else None
    if name is not None:  # name the resource as the validation findings do, so its issues all read the same
        namespace = namespace or default_namespace

    def issue(msg: str, path: str = "", at: int | None = line) -> None:
        issues.append(ConfigIssue(Severity.ERROR, msg, path, file, at, kind, namespace, name))

    if not kind:
        issue("Required value", "kind")
        return None
    if not api_version:
        issue("Required value", "apiVersion")
        return None
    cls = RESOURCE_KINDS.get(kind)
    group = api_version.rpartition("/")[0]
    if cls is None or (group != cls.GROUP):
        if group.endswith("istio.io") or group == "libmesh.io":
            issues.append(
                ConfigIssue(
                    Severity.WARNING,
                    f"kind {kind} ({api_version}) is not supported by libmesh; skipped",
                    "",
                    file,
                    line,
                    kind,
                    namespace,
                    name,
                )
            )
        else:
            log.debug("%s:%d: skipping %s %s", file, line, api_version, kind)
        return None
    version = api_version.rpartition("/")[2]
    if version not in cls.VERSIONS:
        served = ", ".join(f"{cls.GROUP}/{v}" for v in cls.VERSIONS)
        issue(f'apiVersion "{api_version}" is not served for {kind}; use one of {served}', "apiVersion")
        return None

    decoder = Decoder()
    try:
        resource = _decode_with_limits(decoder, cls, node)
    except RecursionError:
        issue(f"nesting deeper than {_MAX_DEPTH} levels (or a recursive YAML alias)")
        return None
    errors = [p for p in decoder.problems if not p.warning]
    for p in decoder.problems:
        severity = Severity.WARNING if p.warning else Severity.ERROR
        issues.append(ConfigIssue(severity, p.message, p.path, file, p.line or line, kind, namespace, name))
    if resource is None:
        return None
    spec_node = _mapping_get(node, "spec")
    if spec_node is None and cls.SPEC_REQUIRED:
        issue("Required value", "spec")
    if not resource.metadata.name and not resource.metadata.generate_name:
        issue("Required value", "metadata.name")
    if errors or (spec_node is None and cls.SPEC_REQUIRED):
        return None
    return Document(resource, file, line, decoder.lines)


def _decode_with_limits(decoder: Decoder, cls: type[Resource], node: yaml.MappingNode) -> Resource | None:
    # Decoding recurses per YAML level; bounding the depth first makes hostile input fail cleanly.
    if _depth(node) > _MAX_DEPTH:
        raise RecursionError
    return decoder.decode_message(cls, node, "")


def _depth(node: yaml.Node, seen: frozenset[int] = frozenset()) -> int:
    """Nesting depth of a node tree; recursive aliases count as infinitely deep."""
    if id(node) in seen:
        return _MAX_DEPTH + 1
    if isinstance(node, yaml.ScalarNode):
        return 1
    stack: list[tuple[yaml.Node, int, frozenset[int]]] = [(node, 1, seen)]
    deepest = 0
    while stack:
        n, d, path = stack.pop()
        if d > _MAX_DEPTH:
            return d
        deepest = max(deepest, d)
        if isinstance(n, yaml.ScalarNode):
            continue
        if id(n) in path:
            return _MAX_DEPTH + 1
        inner = path | {id(n)}
        children: Sequence[Any] = n.value
        if isinstance(n, yaml.MappingNode):
            for k, v in children:
                stack.append((k, d + 1, inner))
                stack.append((v, d + 1, inner))
        else:
            for c in children:
                stack.append((c, d + 1, inner))
    return deepest


def _check(doc: Document, default_namespace: str) -> list[ConfigIssue]:
    res = doc.resource
    ns = res.namespace or default_namespace
    findings: list[Located] = list(validate(res, Context(namespace=ns)))
    findings.extend(unenforced_fields(res))
    out = []
    for f in findings:
        line = doc.line_of(f.path) if doc.file is not None else None
        severity = Severity.WARNING if f.warning else Severity.ERROR
        out.append(ConfigIssue(severity, f.message, f.path, doc.file, line, res.KIND, ns, res.name))
    return out
