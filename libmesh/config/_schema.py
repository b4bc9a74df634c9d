"""The typed-model machinery: frozen dataclasses described once, decoded from YAML with locations, dumped back.

Every Istio message is a ``@message`` class: a frozen, slotted, keyword-only dataclass whose annotations say the
field types. Field names are the proto names in snake_case; the YAML/JSON name is the proto JSON camelCase name
(``export_to`` <-> ``exportTo``), derived once per class. Decoding walks PyYAML nodes, so each field's line is
known, and collects every problem rather than stopping at the first.

A field's absence is ``None`` (scalars and messages) or empty (lists, maps). That keeps what the user wrote, which
is what round-trip and several Istio rules need (``retries: {}`` disables retries; a missing ``retries`` does
not).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import difflib
import enum
import math
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, dataclass_transform

import yaml

__all__ = [
    "Duration",
    "FieldSpec",
    "Located",
    "fields_of",
    "fld",
    "format_duration",
    "message",
    "parse_duration",
    "to_dict",
]

T = TypeVar("T")

#: Durations are ``datetime.timedelta`` (microsecond resolution; Istio's smallest meaningful value is 1 ms).
Duration = datetime.timedelta

_INT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def message(cls: type[T]) -> type[T]:
    """Make ``cls`` an immutable Istio message (frozen, slotted, keyword-only dataclass).

    Example::

        @message
        class Percent:
            value: float | None = None
    """
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


def fld(
    *,
    proto: str | None = None,
    json: str | None = None,
    oneof: str | None = None,
    required: bool = False,
    deprecated: bool = False,
    default: Any = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare a message field with proto facts the annotation cannot carry.

    ``proto`` is the scalar's proto type when it constrains the range (``uint32``); ``json`` overrides the
    camelCase name; ``oneof`` names the oneof group; ``required`` marks ``field_behavior = REQUIRED``.
    """
    meta = {"proto": proto, "json": json, "oneof": oneof, "required": required, "deprecated": deprecated}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class Kind(enum.Enum):
    """The shape of a field's value."""

    STR = "string"
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    BYTES = "bytes"
    DURATION = "duration"
    ENUM = "enum"
    MESSAGE = "object"
    LIST = "array"
    MAP = "map"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """A decoded annotation: the kind plus what it contains."""

    kind: Kind
    cls: Any = None  # the message class or enum class
    item: TypeSpec | None = None  # for lists and maps
    proto: str | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a message: its Python name, YAML name and type."""

    name: str
    json: str
    type: TypeSpec
    oneof: str | None
    required: bool
    deprecated: bool
    #: False for the few collections whose presence matters (their default is None, so ``{}`` is kept).
    empty_is_unset: bool = True


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _type_spec(tp: Any, proto: str | None) -> TypeSpec:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        return _type_spec(args[0], proto)
    if origin is tuple:
        return TypeSpec(Kind.LIST, item=_type_spec(typing.get_args(tp)[0], proto))
    if origin is dict:
        return TypeSpec(Kind.MAP, item=_type_spec(typing.get_args(tp)[1], proto))
    if tp is Any:
        return TypeSpec(Kind.ANY)
    if tp is str:
        return TypeSpec(Kind.STR)
    if tp is bool:
        return TypeSpec(Kind.BOOL)
    if tp is int:
        return TypeSpec(Kind.INT, proto=proto or "int64")
    if tp is float:
        return TypeSpec(Kind.FLOAT)
    if tp is bytes:
        return TypeSpec(Kind.BYTES)
    if tp is datetime.timedelta:
        return TypeSpec(Kind.DURATION)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return TypeSpec(Kind.ENUM, cls=tp)
    if dataclasses.is_dataclass(tp):
        return TypeSpec(Kind.MESSAGE, cls=tp)
    raise TypeError(f"unsupported field type {tp!r}")


_FIELDS: dict[type, tuple[FieldSpec, ...]] = {}
_BY_JSON: dict[type, dict[str, FieldSpec]] = {}
_RESERVED: dict[type, frozenset[str]] = {}


def reserved(cls: type, *names: str) -> None:
    """Record field names the proto has removed (``reserved``): accepted with a warning and ignored, as
    Kubernetes prunes them."""
    _RESERVED[cls] = frozenset(n for name in names for n in (name, _camel(name)))


def fields_of(cls: type) -> tuple[FieldSpec, ...]:
    """The fields of message class ``cls``, computed once and cached."""
    try:
        return _FIELDS[cls]
    except KeyError:
        pass
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        specs.append(
            FieldSpec(
                name=f.name,
                json=meta.get("json") or _camel(f.name),
                type=_type_spec(hints[f.name], meta.get("proto")),
                oneof=meta.get("oneof"),
                required=bool(meta.get("required")),
                deprecated=bool(meta.get("deprecated")),
                empty_is_unset=f.default is not None,
            )
        )
    result = tuple(specs)
    _FIELDS[cls] = result
    # Protobuf JSON parsers accept the proto name and its camelCase form as well as the JSON name.
    by_json: dict[str, FieldSpec] = {}
    for s in result:
        for alias in (s.name.rstrip("_"), _camel(s.name)):
            by_json.setdefault(alias, s)
    for s in result:
        by_json[s.json] = s
    _BY_JSON[cls] = by_json
    return result


def _by_json(cls: type) -> dict[str, FieldSpec]:
    if cls not in _BY_JSON:
        fields_of(cls)
    return _BY_JSON[cls]


# --- durations -------------------------------------------------------------------------------------------

_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DUR_UNITS_US = {"ns": 0.001, "us": 1, "µs": 1, "μs": 1, "ms": 1000, "s": 1_000_000, "m": 60_000_000}
_DUR_UNITS_US["h"] = 3_600_000_000
#: Go durations are int64 nanoseconds, so about 292 years at most; larger values are invalid there too.
_DUR_MAX_US = (2**63 - 1) // 1000


def parse_duration(text: str) -> datetime.timedelta:
    """Parse a Go duration (``1.5s``, ``500ms``, ``1h30m``, ``0``) as Istio accepts it.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return datetime.timedelta(0)
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DUR_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}: use Go syntax such as 1.5s, 500ms or 1h30m")
        total += float(m.group(1)) * _DUR_UNITS_US[m.group(2)]
        pos = m.end()
    if total > _DUR_MAX_US:
        raise ValueError(f"invalid duration {text!r}: out of range (at most about 2562047h)")
    return datetime.timedelta(microseconds=sign * round(total))


def format_duration(d: datetime.timedelta) -> str:
    """Format a duration in the shortest Go syntax that parses back to the same value (``1.5s``, ``250ms``)."""
    us = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    if us == 0:
        return "0s"
    sign = "-" if us < 0 else ""
    us = abs(us)
    if us % 1_000_000 == 0:
        return f"{sign}{us // 1_000_000}s"
    if us < 1_000_000 and us % 1000 == 0:
        return f"{sign}{us // 1000}ms"
    if us < 1000:
        return f"{sign}{us}us"
    secs = f"{us / 1_000_000:.6f}".rstrip("0")
    return f"{sign}{secs}s"


# --- decoding from YAML nodes ----------------------------------------------------------------------------

_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_YAML_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "string",
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:bool": "boolean",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:map": "object",
    "tag:yaml.org,2002:seq": "array",
}


@dataclass(slots=True)
class Located:
    """A problem found while decoding, with the field path and YAML line (1-based)."""

    path: str
    line: int | None
    message: str
    warning: bool = False


class Decoder:
    """Decodes one document's YAML nodes into message objects, recording each field's line and every problem.

    ``lines`` maps a field path (``spec.http[0].route``) to its line; validators use it to place their
    findings.
    """

    def __init__(self) -> None:
        self.problems: list[Located] = []
        self.lines: dict[str, int] = {}

    def error(self, path: str, node: yaml.Node | None, msg: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(Located(path, line, msg))

    def decode_message(self, cls: type[T], node: yaml.Node, path: str) -> T | None:
        """Decode a mapping node into ``cls``; ``None`` (with problems recorded) when it is not a mapping."""
        if not isinstance(node, yaml.MappingNode):
            self.error(path, node, f"must be of type object: {_node_type(node)}")
            return None
        by_json = _by_json(cls)
        values: dict[str, Any] = {}
        seen: set[str] = set()  # fields written, even with a bad value: "Required" would only add noise
        oneofs: dict[str, str] = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else str(knode.value)
            sub = f"{path}.{key}" if path else str(key)
            spec = by_json.get(key)
            if spec is None and key in _RESERVED.get(cls, ()):
                self.problems.append(
                    Located(
                        sub,
                        knode.start_mark.line + 1,
                        f'"{key}" was removed from Istio\'s API; ignored',
                        True,
                    )
                )
                continue
            if spec is None:
                names = sorted({s.json for s in by_json.values()})
                hint = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                extra = f', did you mean "{hint[0]}"?' if hint else ""
                self.error(sub, knode, f'unknown field "{key}"{extra}')
                continue
            sub = f"{path}.{spec.json}" if path else spec.json
            self.lines[sub] = knode.start_mark.line + 1
            if spec.name in seen:
                self.error(sub, knode, f'duplicate field "{key}"')
                continue
            seen.add(spec.name)
            if spec.oneof is not None:
                other = oneofs.get(spec.oneof)
                if other is not None:
                    self.error(sub, knode, f'only one of "{other}" or "{spec.json}" may be set')
                    continue
                oneofs[spec.oneof] = spec.json
            value = self.decode_value(spec.type, vnode, sub)
            if value is not _BAD:
                values[spec.name] = value
        for spec in fields_of(cls):
            if spec.required and spec.name not in seen:
                self.error(f"{path}.{spec.json}" if path else spec.json, node, "Required value")
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:  # pragma: no cover - defensive; all fields are keyword-optional
            self.error(path, node, str(e))
            return None

    def decode_value(self, ts: TypeSpec, node: yaml.Node, path: str) -> Any:
        kind = ts.kind
        if kind is Kind.MESSAGE:
            v = self.decode_message(ts.cls, node, path)
            return _BAD if v is None else v
        if kind is Kind.LIST:
            assert ts.item is not None
            if not isinstance(node, yaml.SequenceNode):
                self.error(path, node, f"must be of type array: {_node_type(node)}")
                return _BAD
            out = []
            for i, item in enumerate(node.value):
                sub = f"{path}[{i}]"
                self.lines.setdefault(sub, item.start_mark.line + 1)
                v = self.decode_value(ts.item, item, sub)
                if v is not _BAD:
                    out.append(v)
            return tuple(out)
        if kind is Kind.MAP:
            assert ts.item is not None
            if not isinstance(node, yaml.MappingNode):
                self.error(path, node, f"must be of type object: {_node_type(node)}")
                return _BAD
            result: dict[str, Any] = {}
            for knode, vnode in node.value:
                key = _scalar(knode)
                if not isinstance(key, str):
                    key = str(key)
                sub = f"{path}[{key}]" if not _SIMPLE_KEY.match(key) else f"{path}.{key}"
                self.lines[sub] = knode.start_mark.line + 1
                v = self.decode_value(ts.item, vnode, sub)
                if v is not _BAD:
                    result[key] = v
            return result
        if kind is Kind.ANY:
            return _CONSTRUCTOR.construct_object(node, deep=True)
        if not isinstance(node, yaml.ScalarNode):
            self.error(path, node, f"must be of type {_scalar_kind_name(ts)}: {_node_type(node)}")
            return _BAD
        value = _scalar(node)
        return self._scalar(ts, value, node, path)

    def _scalar(self, ts: TypeSpec, value: Any, node: yaml.Node, path: str) -> Any:
        kind = ts.kind
        if value is None:
            self.error(path, node, f'must be of type {_scalar_kind_name(ts)}: "null"')
            return _BAD
        if kind is Kind.STR:
            if isinstance(value, str):
                return value
        elif kind is Kind.BOOL:
            if isinstance(value, bool):
                return value
        elif kind is Kind.INT:
            if isinstance(value, int) and not isinstance(value, bool):
                lo, hi = _INT_RANGES[ts.proto or "int64"]
                if value < lo:
                    self.error(path, node, f"should be greater than or equal to {lo}")
                    return _BAD
                if value > hi:
                    self.error(path, node, f"should be less than or equal to {hi}")
                    return _BAD
                return value
        elif kind is Kind.FLOAT:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # an integer literal beyond a double's range
                    number = math.inf
                if not math.isfinite(number):  # JSON, hence Kubernetes, has no NaN or infinity
                    self.error(path, node, f"must be a finite number: {node.value}")
                    return _BAD
                return number
        elif kind is Kind.DURATION:
            if isinstance(value, str):
                try:
                    return parse_duration(value)
                except ValueError as e:
                    self.error(path, node, str(e))
                    return _BAD
        elif kind is Kind.ENUM:
            if isinstance(value, str):
                try:
                    return ts.cls[value]
                except KeyError:
                    allowed = ", ".join(f'"{m.name}"' for m in ts.cls)
                    self.error(path, node, f'Unsupported value: "{value}": supported values: {allowed}')
                    return _BAD
        elif kind is Kind.BYTES and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                self.error(path, node, "must be base64-encoded bytes")
                return _BAD
        self.error(path, node, f'must be of type {_scalar_kind_name(ts)}: "{_value_type(value)}"')
        return _BAD


_BAD: Any = object()
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _scalar(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        try:
            return _CONSTRUCTOR.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            return node.value
    return None


def _scalar_kind_name(ts: TypeSpec) -> str:
    if ts.kind in (Kind.DURATION, Kind.ENUM, Kind.BYTES):
        return "string"
    return str(ts.kind.value)


def _node_type(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return f'"{_value_type(_scalar(node))}"'
    return f'"{_YAML_TYPE_NAMES.get(node.tag, node.tag)}"'


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


# --- dumping ---------------------------------------------------------------------------------------------


def to_dict(obj: Any) -> dict[str, Any]:
    """Dump a message to plain YAML/JSON-ready data with Istio's field names, omitting unset fields.

    >>> from libmesh.config import HTTPRetry
    >>> to_dict(HTTPRetry(attempts=3, retry_on="5xx"))
    {'attempts': 3, 'retryOn': '5xx'}
    """
    out: dict[str, Any] = {}
    for spec in fields_of(type(obj)):
        value = getattr(obj, spec.name)
        if value is None or (spec.type.kind in (Kind.LIST, Kind.MAP) and not value and spec.empty_is_unset):
            continue
        out[spec.json] = _dump_value(spec.type, value)
    return out


def _dump_value(ts: TypeSpec, value: Any) -> Any:
    kind = ts.kind
    if kind is Kind.MESSAGE:
        return to_dict(value)
    if kind is Kind.LIST:
        assert ts.item is not None
        return [_dump_value(ts.item, v) for v in value]
    if kind is Kind.MAP:
        assert ts.item is not None
        return {k: _dump_value(ts.item, v) for k, v in value.items()}
    if kind is Kind.ENUM:
        return value.name if isinstance(value, enum.Enum) else str(value)
    if kind is Kind.DURATION:
        return format_duration(value)
    if kind is Kind.BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def walk(obj: Any, path: str = "") -> Iterator[tuple[str, FieldSpec, Any]]:
    """Yield ``(path, field, value)`` for every set field of ``obj``, depth first."""
    for spec in fields_of(type(obj)):
        value = getattr(obj, spec.name)
        if value is None:
            continue
        sub = f"{path}.{spec.json}" if path else spec.json
        yield sub, spec, value
        kind = spec.type.kind
        if kind is Kind.MESSAGE:
            yield from walk(value, sub)
        elif kind is Kind.LIST and spec.type.item is not None and spec.type.item.kind is Kind.MESSAGE:
            for i, v in enumerate(value):
                yield from walk(v, f"{sub}[{i}]")
        elif kind is Kind.MAP and spec.type.item is not None and spec.type.item.kind is Kind.MESSAGE:
            for k, v in value.items():
                yield from walk(v, f"{sub}.{k}")
