"""Property tests: whatever YAML-shaped input arrives, ``load_yaml`` either succeeds or raises ``ConfigError``.

The contract under test is the one users rely on when they feed libmesh hand-written or generated YAML: bad input
is reported (every error with a file and a line inside the text), never turned into a ``TypeError``,
``KeyError``, ``RecursionError`` or a PyYAML exception escaping the loader.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libmesh.config import load_yaml
from libmesh.config._schema import _INT_RANGES, Kind, TypeSpec, fields_of
from libmesh.config.resources import RESOURCE_KINDS, Resource
from libmesh.errors import ConfigError

_FILE = "fuzz.yaml"
# Each property stays at about a second and is derandomized, so a failure reproduces on every run. A longer,
# randomized campaign: LIBMESH_FUZZ_EXAMPLES=20000 pytest tests/config/test_fuzz.py
_CAMPAIGN = os.environ.get("LIBMESH_FUZZ_EXAMPLES")
_SETTINGS = settings(
    max_examples=int(_CAMPAIGN or 150),
    deadline=None,
    derandomize=_CAMPAIGN is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _field_names(cls: type, seen: set[type] | None = None) -> set[str]:
    """Every YAML field name of ``cls`` and of the messages it contains."""
    seen = set() if seen is None else seen
    if cls in seen:
        return set()
    seen.add(cls)
    names: set[str] = set()
    for spec in fields_of(cls):
        names.add(spec.json)
        ts = spec.type.item if spec.type.kind in (Kind.LIST, Kind.MAP) else spec.type
        if ts is not None and ts.kind is Kind.MESSAGE:
            names |= _field_names(ts.cls, seen)
    return names


def _spec_class(kind: type[Resource]) -> type:
    spec: type = next(s.type.cls for s in fields_of(kind) if s.name == "spec")
    return spec


_KINDS = sorted(RESOURCE_KINDS.values(), key=lambda c: c.KIND)
_NAMES = {k.KIND: sorted(_field_names(_spec_class(k))) for k in _KINDS}
# Values that mean something to Istio's decoder: enum names, durations, ports, hosts, IP addresses.
_MEANINGFUL = [
    "1.5s", "500ms", "1h30m", "-1s", "1x", "0", "ISTIO_MUTUAL", "ROUND_ROBIN", "DNS", "STATIC", "ALLOW",
    "reviews", "*.example.com", "1.2.3.4", "2001:db8::", "10.0.0.0/8", "5xx,gateway-error", "%", "", "==",
]  # fmt: skip

# Go durations, well- and ill-formed, including ones far beyond Go's int64-nanosecond range.
_durations = st.from_regex(r"[+-]?(\d{1,22}(\.\d{0,4})?(ns|us|µs|ms|s|m|h|d|)){1,3}", fullmatch=True)
_huge_ints = st.sampled_from([2**31, 2**32, 2**63, 2**64, -(2**63) - 1, 10**400, -(10**400)])

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(),
    _huge_ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(_MEANINGFUL),
    _durations,
)


def _values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        _scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=25,
    )


@st.composite
def _documents(draw: st.DrawFn) -> dict[str, Any]:
    """An Istio-looking document: a real kind and apiVersion (mostly) around a random spec."""
    kind = draw(st.sampled_from(_KINDS))
    keys = st.sampled_from(_NAMES[kind.KIND]) | st.text(max_size=10)
    versions = [f"{kind.GROUP}/{v}" if kind.GROUP else v for v in kind.VERSIONS]
    doc: dict[str, Any] = {
        "apiVersion": draw(st.sampled_from([*versions, f"{kind.GROUP}/v9", "v1"]) | _scalars),
        "kind": draw(st.just(kind.KIND) | _scalars),
        "metadata": draw(
            st.fixed_dictionaries({"name": st.text(max_size=8)}, optional={"namespace": _scalars})
            | _values(st.sampled_from(["name", "namespace", "labels", "annotations"]))
        ),
    }
    if draw(st.booleans()):
        doc["spec"] = draw(st.dictionaries(keys, _values(keys), max_size=6))
    else:
        doc["spec"] = draw(_values(keys))
    return doc


_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _typed_value(ts: TypeSpec, depth: int) -> st.SearchStrategy[Any]:
    """Values of the field's own type (mostly), so documents decode and reach the validation rules."""
    kind = ts.kind
    if kind is Kind.MESSAGE:
        return _typed_message(ts.cls, depth + 1)
    if kind is Kind.LIST:
        assert ts.item is not None
        return st.lists(_typed_value(ts.item, depth), max_size=3)
    if kind is Kind.MAP:
        assert ts.item is not None
        keys = st.sampled_from(["app", "version", "*", "", "a.b/c"]) | st.text(max_size=6)
        return st.dictionaries(keys, _typed_value(ts.item, depth), max_size=3)
    if kind is Kind.INT:
        lo, hi = _INT_RANGES[ts.proto or "int64"]
        return st.sampled_from([0, 1, 80, 65535, 65536, -1, lo, hi]) | st.integers(lo, hi)
    if kind is Kind.FLOAT:
        return st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, 50, 100, 100.5, -1])
    if kind is Kind.BOOL:
        return st.booleans()
    if kind is Kind.DURATION:
        return _durations | st.sampled_from(["0s", "1ms", "0.5ms", "1.5s", "-1s", "2562047h"])
    if kind is Kind.ENUM:
        return st.sampled_from([m.name for m in ts.cls])
    if kind is Kind.BYTES:
        return st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode())
    if kind is Kind.ANY:
        return _values(st.text(max_size=6))
    return st.sampled_from(_MEANINGFUL) | st.text(max_size=10)


_MESSAGES: dict[tuple[type, int], st.SearchStrategy[dict[str, Any]]] = {}


def _typed_message(cls: type, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with a few of ``cls``'s fields (few, so oneof groups rarely clash), each of its type."""
    if depth > 5:
        return st.just({})
    key = (cls, depth)
    if key not in _MESSAGES:
        fields = fields_of(cls)

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            chosen = draw(st.lists(st.sampled_from(fields), max_size=4, unique=True)) if fields else []
            return {f.json: draw(_typed_value(f.type, depth)) for f in chosen}

        _MESSAGES[key] = build()
    return _MESSAGES[key]


@st.composite
def _typed_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed document of a random kind whose spec follows the model's types."""
    kind = draw(st.sampled_from(_KINDS))
    version = draw(st.sampled_from(kind.VERSIONS))
    return {
        "apiVersion": f"{kind.GROUP}/{version}" if kind.GROUP else version,
        "kind": kind.KIND,
        "metadata": {"name": "fuzz", "namespace": draw(st.sampled_from(["default", "istio-system", "ns"]))},
        "spec": draw(_typed_message(_spec_class(kind), 0)),
    }


def _check(text: str) -> None:
    """``load_yaml`` succeeds or raises ConfigError whose errors all point at a line of ``text``."""
    # YAML also breaks lines at CR, NEL and the Unicode separators; errors found at the end of the stream
    # are placed one line past the last one.
    last_line = len(_LINE_BREAK.findall(text)) + 2
    try:
        load_yaml(text, file=_FILE)
    except ConfigError as e:
        assert e.errors, "ConfigError raised without any error"
        for issue in e.errors:
            assert issue.file == _FILE, str(issue)
            assert issue.line is not None and 1 <= issue.line <= last_line, f"line out of range: {issue}"
            assert issue.message, str(issue)


def _dump(data: Any) -> str:
    return yaml.safe_dump_all(data, allow_unicode=True, sort_keys=False)


@_SETTINGS
@given(st.lists(_documents(), min_size=1, max_size=3))
def test_istio_shaped_documents(docs: list[dict[str, Any]]) -> None:
    """Documents with real Istio headers and random bodies are loaded or rejected cleanly."""
    _check(_dump(docs))


@_SETTINGS
@given(st.lists(_typed_documents(), min_size=1, max_size=3))
def test_model_typed_documents(docs: list[dict[str, Any]]) -> None:
    """Documents whose fields have the right types reach the validation rules, which must not crash."""
    _check(_dump(docs))


@_SETTINGS
@given(st.lists(_values(st.text(max_size=10) | st.sampled_from(["kind", "apiVersion", "items"])), max_size=3))
def test_arbitrary_yaml_values(docs: list[Any]) -> None:
    """Any YAML data at all (lists, scalars, nulls, deep nesting) is loaded or rejected cleanly."""
    _check(_dump(docs))


@_SETTINGS
@given(st.lists(_documents(), min_size=1, max_size=4))
def test_kind_list_wrapping(items: list[dict[str, Any]]) -> None:
    """``kind: List`` of random Istio documents behaves like the documents themselves."""
    _check(_dump([{"apiVersion": "v1", "kind": "List", "items": items}]))


# Fragments that steer the YAML scanner into its corner cases (flow collections, anchors, tags, colons in
# flow scalars as in ``[1.2.3.4, 2001:db8::]``, document markers, tabs).
_YAML_BITS = [
    "\n", "\n  ", "- ", ": ", ":", "[", "]", "{", "}", ", ", "'", '"', "#", "&a ", "*a", "!!str ", "!x ",
    "---\n", "...\n", "|\n", ">-\n", "\t", "kind: VirtualService\n", "apiVersion: networking.istio.io/v1\n",
    "spec:", "hosts:", "addresses: [", "2001:db8::", "1.2.3.4", "? ", "%YAML 1.1\n", "\\", "\x85", "\ufeff",
]  # fmt: skip


@_SETTINGS
@given(st.lists(st.sampled_from(_YAML_BITS) | st.text(max_size=4), max_size=40).map("".join))
def test_raw_text(text: str) -> None:
    """Random text made of YAML syntax fragments is loaded or rejected cleanly."""
    _check(text)


# Lone surrogates, control characters and Unicode line separators, mixed into ordinary text.
_odd_chars = st.characters(categories=["Cs", "Cc", "Zl", "Zp"])


@_SETTINGS
@given(st.text(alphabet=st.characters() | _odd_chars, max_size=200))
def test_random_unicode_text(text: str) -> None:
    """Random unicode, including what YAML forbids (control characters, lone surrogates), is handled cleanly."""
    _check(text)


_VS_WITH = (
    "apiVersion: networking.istio.io/v1\n"
    "kind: VirtualService\n"
    "metadata: {{name: r}}\n"
    "spec:\n"
    "  hosts: [r]\n"
    "  http:\n"
    "  - route: [{{destination: {{host: r}}}}]\n"
    "    {field}\n"
)


@pytest.mark.parametrize(
    ("field", "path", "message"),
    [
        ("timeout: 99999999999999999h", "timeout", "out of range (at most about 2562047h)"),
        ("timeout: " + "9" * 400 + "s", "timeout", "out of range (at most about 2562047h)"),
        ("mirrorPercentage: {value: " + "1" * 400 + "}", "mirrorPercentage.value", "must be a finite number"),
        ("mirrorPercentage: {value: .nan}", "mirrorPercentage.value", "must be a finite number: .nan"),
        ("mirrorPercentage: {value: -.inf}", "mirrorPercentage.value", "must be a finite number: -.inf"),
        ("mirrorPort: 1", "mirrorPort", 'unknown field "mirrorPort"'),
        (
            "mirror_percent: 123456789012345678901234567890",
            "mirror_percent",
            "should be less than or equal to",
        ),
    ],
)
def test_fuzz_findings(field: str, path: str, message: str) -> None:
    """Inputs the properties above once crashed the loader on (or let through) are errors at their line."""
    with pytest.raises(ConfigError) as info:
        load_yaml(_VS_WITH.format(field=field), file=_FILE)
    (error,) = info.value.errors
    assert (error.path, error.line) == (f"spec.http[0].{path}", 8)
    assert message in error.message
