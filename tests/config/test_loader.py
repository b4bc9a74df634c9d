"""The loader: where YAML comes from (files, directories, streams, ``kind: List``), what it skips, and how each
problem is reported (``FILE:LINE: KIND NS/NAME: PATH: message``, every problem of a file in one run).
"""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path

import pytest

from libmesh.cli import main
from libmesh.config import (
    DestinationRule,
    ServiceEntry,
    VirtualService,
    load_paths,
    load_yaml,
    parse_duration,
    parse_paths,
    parse_yaml,
)
from libmesh.errors import ConfigError, ConfigIssue, Severity


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def _vs(name: str, host: str = "reviews", namespace: str | None = None) -> str:
    """A valid VirtualService of nine lines."""
    meta = f"{{name: {name}, namespace: {namespace}}}" if namespace else f"{{name: {name}}}"
    return _yaml(
        f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata:
          {meta}
        spec:
          hosts: [{host}]
          http:
          - route:
            - destination: {{host: {host}}}
        """
    )


def _errors(text: str, file: str = "t.yaml") -> list[str]:
    return [str(i) for i in parse_yaml(text, file=file).errors]


# --- where YAML comes from -------------------------------------------------------------------------------


def test_single_file(tmp_path: Path) -> None:
    """A file path loads the resources it holds, each knowing its file and first line."""
    f = tmp_path / "vs.yaml"
    f.write_text(_vs("reviews"))
    config = load_paths([f])
    (doc,) = config.documents
    assert isinstance(doc.resource, VirtualService)
    assert (doc.resource.name, doc.file, doc.line) == ("reviews", str(f), 1)
    assert config.issues == ()


def test_directory_is_read_recursively_and_only_yaml(tmp_path: Path) -> None:
    """A directory contributes every *.yaml and *.yml below it, in path order; other files are ignored."""
    (tmp_path / "a.yaml").write_text(_vs("a"))
    sub = tmp_path / "sub" / "deeper"
    sub.mkdir(parents=True)
    (sub / "b.yml").write_text(_vs("b"))
    (tmp_path / "sub" / "c.yaml").write_text(_vs("c"))
    for ignored in ("notes.txt", "d.yaml.bak", "e.json", "README.md"):
        (tmp_path / "sub" / ignored).write_text("this: [is not: valid yaml")
    config = load_paths([tmp_path])
    assert [r.name for r in config.resources] == ["a", "c", "b"]  # sub/c.yaml sorts before sub/deeper/
    assert config.issues == ()


def test_files_and_directories_mixed(tmp_path: Path) -> None:
    """Several paths load in the order given."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.yaml").write_text(_vs("x"))
    (tmp_path / "y.yaml").write_text(_vs("y"))
    config = load_paths([tmp_path / "y.yaml", tmp_path / "d"])
    assert [r.name for r in config.resources] == ["y", "x"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    """A path that does not exist is reported (not silently skipped)."""
    missing = tmp_path / "nope.yaml"
    config = parse_paths([missing])
    assert [str(i) for i in config.errors] == [f"{missing}: no such file or directory"]


def test_multi_document_stream_with_empty_documents() -> None:
    """``---`` separates documents; empty ones (only ``---`` or comments) are skipped without complaint."""
    text = "---\n" + _vs("one") + "---\n# just a comment\n---\n---\n" + _vs("two") + "---\n"
    config = load_yaml(text, file="s.yaml")
    assert [r.name for r in config.resources] == ["one", "two"]
    assert [d.line for d in config.documents] == [2, 15]
    assert config.issues == ()


@pytest.mark.parametrize("text", ["", "\n\n", "---\n", "# nothing here\n", "---\n...\n"])
def test_empty_input(text: str) -> None:
    """Empty files and streams load as an empty config."""
    config = load_yaml(text)
    assert config.documents == () and config.issues == ()


def test_kind_list() -> None:
    """``kind: List`` (what ``kubectl get -o yaml`` prints) expands into its items, nested lists too."""
    text = _yaml(
        """
        apiVersion: v1
        kind: List
        items:
        - apiVersion: networking.istio.io/v1
          kind: DestinationRule
          metadata: {name: reviews}
          spec: {host: reviews}
        - apiVersion: v1
          kind: List
          items:
          - apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {name: ext}
            spec:
              hosts: [api.example.com]
              ports: [{number: 443, name: https, protocol: HTTPS}]
              resolution: DNS
        """
    )
    config = load_yaml(text)
    assert [type(r) for r in config.resources] == [DestinationRule, ServiceEntry]
    assert [d.line for d in config.documents] == [4, 11]


def test_kind_list_items_must_be_a_list() -> None:
    """A List whose ``items`` is not a sequence is an error at the List's line."""
    assert _errors("apiVersion: v1\nkind: List\nitems: {a: 1}\n") == ["t.yaml:1: items: must be a list"]


def test_non_istio_kinds_are_skipped_silently() -> None:
    """Kubernetes objects that travel with Istio config (Deployments, Services) are skipped, not reported."""
    text = _yaml(
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: reviews}
        spec: {replicas: 1, template: {spec: {containers: [{name: c, image: x}]}}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: reviews}
        spec: {ports: [{port: 9080, name: http}]}
        ---
        """
    ) + _vs("reviews")
    config = load_yaml(text)
    assert [type(r) for r in config.resources] == [VirtualService]
    assert config.issues == ()


def test_unknown_istio_kind_warns() -> None:
    """A kind of an istio.io group that libmesh does not know is skipped with a warning, not dropped silently."""
    text = "apiVersion: networking.istio.io/v1\nkind: Frobnicator\nmetadata: {name: f}\nspec: {}\n"
    config = load_yaml(text, file="f.yaml")
    assert config.documents == ()
    assert [str(i) for i in config.issues] == [
        "warning: f.yaml:1: Frobnicator default/f: kind Frobnicator (networking.istio.io/v1) is not supported "
        "by libmesh; skipped"
    ]


@pytest.mark.parametrize(
    "api_version", ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"]
)
def test_served_api_versions(api_version: str) -> None:
    """Every version Istio serves for a kind is accepted and kept on the object."""
    text = _vs("r").replace("networking.istio.io/v1", api_version, 1)
    (vs,) = load_yaml(text).resources
    assert vs.api_version == api_version


def test_unserved_api_version_is_an_error() -> None:
    """A version Istio does not serve is an error naming the versions that are served."""
    text = _vs("r").replace("networking.istio.io/v1", "networking.istio.io/v2", 1)
    assert _errors(text) == [
        't.yaml:1: VirtualService default/r: apiVersion: apiVersion "networking.istio.io/v2" is not served for '
        "VirtualService; use one of networking.istio.io/v1, networking.istio.io/v1beta1, "
        "networking.istio.io/v1alpha3"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "kind: VirtualService\nmetadata: {name: r}\n",
            "t.yaml:1: VirtualService default/r: apiVersion: Required value",
        ),
        ("apiVersion: networking.istio.io/v1\nmetadata: {name: r}\n", "t.yaml:1: kind: Required value"),
        ("- a\n- b\n", "t.yaml:1: a document must be a mapping"),
        ("just text\n", "t.yaml:1: a document must be a mapping"),
    ],
)
def test_documents_without_a_kind(text: str, expected: str) -> None:
    """Documents that are not Kubernetes objects at all are errors, not silently ignored."""
    assert _errors(text) == [expected]


def test_required_name_and_spec() -> None:
    """``metadata.name`` is required; so is ``spec`` for the kinds whose spec Istio requires."""
    text = _yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {labels: {app: x}}
        """
    )
    assert _errors(text) == [
        "t.yaml:1: ServiceEntry: spec: Required value",
        "t.yaml:1: ServiceEntry: metadata.name: Required value",
    ]


# --- how problems are reported ---------------------------------------------------------------------------

_BAD_VS = _yaml(
    """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata:
      name: reviews
      namespace: bookinfo
    spec:
      hosts:
      - reviews
      http:
      - retires:
          attempts: 3
        timeout: 1x
        route:
        - destination:
            host: reviews
            port:
              number: "80"
          weight: [50]
    """
)


def test_every_error_of_a_file_with_its_line() -> None:
    """All the errors of a document are reported in one run, each at the line of the offending field."""
    who = "bad.yaml:{}: VirtualService bookinfo/reviews: spec.http[0]."
    assert _errors(_BAD_VS, file="bad.yaml") == [
        who.format(10) + 'retires: unknown field "retires", did you mean "retries"?',
        who.format(12) + "timeout: invalid duration '1x': use Go syntax such as 1.5s, 500ms or 1h30m",
        who.format(17) + 'route[0].destination.port.number: must be of type integer: "string"',
        who.format(18) + 'route[0].weight: must be of type integer: "array"',
    ]


def test_errors_of_several_documents_and_files(tmp_path: Path) -> None:
    """Errors in several documents and files all come back from one load, in file order."""
    (tmp_path / "a.yaml").write_text(_BAD_VS + "---\n" + _BAD_VS)
    (tmp_path / "b.yaml").write_text(_BAD_VS)
    with pytest.raises(ConfigError) as info:
        load_paths([tmp_path])
    files_lines = [(Path(str(e.file)).name, e.line) for e in info.value.errors]
    assert len(files_lines) == 12
    assert files_lines[:5] == [("a.yaml", 10), ("a.yaml", 12), ("a.yaml", 17), ("a.yaml", 18), ("a.yaml", 29)]
    assert files_lines[-1] == ("b.yaml", 18)


def test_validation_errors_point_at_the_field() -> None:
    """Errors found by the validation rules (after decoding) also carry the offending field's line."""
    text = _yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - route:
            - destination: {host: reviews}
            retries:
              attempts: -1
        """
    )
    (issue,) = parse_yaml(text, file="vs.yaml").errors
    assert (issue.line, issue.path, issue.kind, issue.namespace, issue.name) == (
        10,
        "spec.http[0].retries.attempts",
        "VirtualService",
        "default",
        "reviews",
    )
    assert str(issue).startswith(
        "vs.yaml:10: VirtualService default/reviews: spec.http[0].retries.attempts: "
    )


def test_issue_format() -> None:
    """``str(issue)`` is ``FILE:LINE: KIND NS/NAME: PATH: message``, warnings prefixed ``warning:``."""
    error = ConfigIssue(Severity.ERROR, "msg", "spec.x", "f.yaml", 3, "VirtualService", "ns", "n")
    assert str(error) == "f.yaml:3: VirtualService ns/n: spec.x: msg"
    warning = ConfigIssue(Severity.WARNING, "msg", "spec.x", "f.yaml", 3, "VirtualService", "ns", "n")
    assert str(warning) == "warning: f.yaml:3: VirtualService ns/n: spec.x: msg"


def test_decoder_errors_name_the_default_namespace() -> None:
    """Decoding errors name the resource as validation errors do: unset namespaces are the default one."""
    text = _vs("r").replace("hosts: [reviews]", "hosts: reviews")
    assert _errors(text, file="f.yaml") == [
        'f.yaml:6: VirtualService default/r: spec.hosts: must be of type array: "string"'
    ]
    assert next(str(i) for i in parse_yaml(text, file="f.yaml", namespace="prod").errors).startswith(
        "f.yaml:6: VirtualService prod/r: "
    )


@pytest.mark.parametrize(
    ("field", "suggestion"),
    [("retires", "retries"), ("timout", "timeout"), ("rewite", "rewrite"), ("fualt", "fault")],
)
def test_unknown_field_did_you_mean(field: str, suggestion: str) -> None:
    """A misspelt field is an error that suggests the closest real field."""
    text = _vs("r").replace("  - route:", f"  - {field}: {{}}\n    route:")
    (error,) = _errors(text)
    assert error.endswith(f'spec.http[0].{field}: unknown field "{field}", did you mean "{suggestion}"?')


def test_unknown_field_without_a_close_match() -> None:
    """A field with nothing like it is still an error, just without a suggestion."""
    text = _vs("r").replace("  - route:", "  - zzzzqqq: 1\n    route:")
    assert _errors(text) == [
        't.yaml:8: VirtualService default/r: spec.http[0].zzzzqqq: unknown field "zzzzqqq"'
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yes", 'must be of type array: "boolean"'),
        ("{a: 1}", 'must be of type array: "object"'),
        ("3", 'must be of type array: "integer"'),
    ],
)
def test_type_errors(value: str, message: str) -> None:
    """A value of the wrong YAML type is reported with the expected and the actual type."""
    text = _vs("r").replace("hosts: [reviews]", f"hosts: {value}")
    assert _errors(text) == [f"t.yaml:6: VirtualService default/r: spec.hosts: {message}"]


@pytest.mark.parametrize(
    ("route", "path", "message"),
    [
        ("{destination: {host: reviews}, weight: abc}", "weight", 'must be of type integer: "string"'),
        ("{destination: {host: reviews}, weight: 1.5}", "weight", 'must be of type integer: "number"'),
        ("{destination: {host: reviews}, weight: null}", "weight", 'must be of type integer: "null"'),
        (
            "{destination: {host: reviews}, weight: 2147483648}",
            "weight",
            "should be less than or equal to 2147483647",
        ),
        (
            "{destination: {host: r, port: {number: -1}}}",
            "destination.port.number",
            "should be greater than or equal to 0",
        ),
        ("{destination: {host: 5}}", "destination.host", 'must be of type string: "integer"'),
        ("{destination: [reviews]}", "destination", 'must be of type object: "array"'),
        (
            "{destination: {host: reviews, port: {number: 1e3}}}",
            "destination.port.number",
            'must be of type integer: "string"',
        ),
    ],
)
def test_scalar_type_errors(route: str, path: str, message: str) -> None:
    """Values are checked against the proto type (integer ranges too), one error per bad value."""
    text = _vs("r").replace("- destination: {host: reviews}", f"- {route}")
    assert _errors(text) == [f"t.yaml:9: VirtualService default/r: spec.http[0].route[0].{path}: {message}"]


def test_yaml_syntax_error_has_a_line() -> None:
    """A YAML syntax error is reported with the line where the parser stopped."""
    text = _vs("r").replace("  hosts: [reviews]", "  hosts: [reviews\n  gateways: [mesh]")
    (error,) = _errors(text, file="y.yaml")
    assert error.startswith("y.yaml:7: invalid YAML: ")


def test_yaml_forbidden_character_has_a_line() -> None:
    """Characters YAML forbids (control characters, lone surrogates) are errors with their line."""
    assert _errors("a: 1\nb: \x01\n") == [
        "t.yaml:2: invalid YAML: character U+0001 is not allowed (control characters are not allowed)"
    ]
    (error,) = _errors("a: 1\n\nb: \ud800\n")
    assert error.startswith("t.yaml:3: invalid YAML: character U+D800 is not allowed")


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    """A self-referencing YAML alias is rejected cleanly."""
    text = _vs("r").replace("spec:\n", "spec: &s\n").replace("http:", "gateways: [*s]\n  http:")
    (error,) = _errors(text)
    assert "nesting deeper than 100 levels (or a recursive YAML alias)" in error


# --- values ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.5s", datetime.timedelta(seconds=1.5)),
        ("500ms", datetime.timedelta(milliseconds=500)),
        ("1h30m", datetime.timedelta(hours=1, minutes=30)),
        ("2h45m30.5s", datetime.timedelta(hours=2, minutes=45, seconds=30.5)),
        ("1s500ms", datetime.timedelta(seconds=1.5)),
        (".5s", datetime.timedelta(seconds=0.5)),
        ("0", datetime.timedelta(0)),
        ("0s", datetime.timedelta(0)),
        ("+5s", datetime.timedelta(seconds=5)),
        ("-1s", datetime.timedelta(seconds=-1)),
        ("250us", datetime.timedelta(microseconds=250)),
        ("250µs", datetime.timedelta(microseconds=250)),
        ("1500ns", datetime.timedelta(microseconds=2)),  # microsecond resolution: rounded
        ("2562047h", datetime.timedelta(hours=2562047)),
    ],
)
def test_go_durations(text: str, expected: datetime.timedelta) -> None:
    """Durations are Go syntax, as Istio's CRDs take them."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1.5", "s", "1x", "1d", "1 s", "1e3s", "--1s", "ms", "1h 30m", "2562048h", "9" * 400 + "s"]
)
def test_bad_go_durations(text: str) -> None:
    """Anything Go's ParseDuration rejects (no unit, unknown unit, spaces, beyond int64 nanoseconds) is invalid."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1x", "invalid duration '1x': use Go syntax such as 1.5s, 500ms or 1h30m"),
        ("99999999999h", "invalid duration '99999999999h': out of range (at most about 2562047h)"),
        ("5", 'must be of type string: "integer"'),
        ("1.5", 'must be of type string: "number"'),
    ],
)
def test_duration_errors_in_yaml(value: str, message: str) -> None:
    """A bad duration in a document is an error at its line."""
    text = _vs("r").replace("  - route:", f"  - timeout: {value}\n    route:")
    assert _errors(text) == [f"t.yaml:8: VirtualService default/r: spec.http[0].timeout: {message}"]


def test_duration_in_yaml_is_a_timedelta() -> None:
    """A duration field decodes to ``datetime.timedelta``."""
    text = _vs("r").replace("  - route:", "  - timeout: 1.5s\n    route:")
    (vs,) = load_yaml(text).of_kind(VirtualService)
    assert vs.spec.http[0].timeout == datetime.timedelta(seconds=1.5)


def test_flow_sequence_with_ipv6_address() -> None:
    """``[1.2.3.4, 2001:db8::]`` is a two-item list in Kubernetes; libyaml alone rejects it, libmesh does not."""
    text = _yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: ext}
        spec:
          hosts: [ext.example.com]
          addresses: [1.2.3.4, 2001:db8::, fe80::1]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 1.2.3.4}]
        """
    )
    config = load_yaml(text, file="se.yaml")
    (se,) = config.of_kind(ServiceEntry)
    assert se.spec.addresses == ("1.2.3.4", "2001:db8::", "fe80::1")
    # Quoting happens in place: later lines keep their numbers.
    assert config.documents[0].line_of("spec.ports") == 7


def test_removed_field_warns_and_is_ignored() -> None:
    """A field Istio removed from its API (``websocketUpgrade``) is accepted with a warning, as Kubernetes
    prunes it."""
    text = _vs("r").replace("  - route:", "  - websocketUpgrade: true\n    route:")
    config = load_yaml(text, file="t.yaml")
    assert [str(i) for i in config.issues] == [
        "warning: t.yaml:8: VirtualService default/r: spec.http[0].websocketUpgrade: "
        '"websocketUpgrade" was removed from Istio\'s API; ignored'
    ]
    (vs,) = config.resources
    assert vs == load_yaml(_vs("r")).resources[0]


def test_snake_case_field_names_are_accepted() -> None:
    """The proto field name (``per_try_timeout``) is accepted alongside the JSON name, as protobuf does."""
    a = _vs("r").replace("  - route:", "  - retries: {attempts: 2, per_try_timeout: 2s}\n    route:")
    b = _vs("r").replace("  - route:", "  - retries: {attempts: 2, perTryTimeout: 2s}\n    route:")
    assert load_yaml(a).resources == load_yaml(b).resources


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            "timeout: 1s\n    timeout: 2s",
            ['9: VirtualService default/r: spec.http[0].timeout: duplicate field "timeout"'],
        ),
        (
            "retries:\n      perTryTimeout: 1s\n      per_try_timeout: 2s",
            [
                '10: VirtualService default/r: spec.http[0].retries.perTryTimeout: duplicate field "per_try_timeout"'
            ],
        ),
        (
            "timeout: x\n    timeout: 2s",
            [
                "8: VirtualService default/r: spec.http[0].timeout: invalid duration 'x': use Go syntax such as "
                "1.5s, 500ms or 1h30m",
                '9: VirtualService default/r: spec.http[0].timeout: duplicate field "timeout"',
            ],
        ),
    ],
)
def test_duplicate_field_is_an_error(fields: str, errors: list[str]) -> None:
    """The same field twice (in either spelling, even after a bad first value) is an error at the second."""
    text = _vs("r").replace("  - route:", f"  - {fields}\n    route:")
    assert _errors(text) == [f"t.yaml:{e}" for e in errors]


# --- load_paths / ConfigSet ------------------------------------------------------------------------------


def test_load_paths_raises_config_error_with_all_errors(tmp_path: Path) -> None:
    """``load_paths`` raises ConfigError; ``.errors`` holds each error and the message lists them all."""
    f = tmp_path / "bad.yaml"
    f.write_text(_BAD_VS)
    with pytest.raises(ConfigError) as info:
        load_paths([f])
    err = info.value
    assert [e.line for e in err.errors] == [10, 12, 17, 18]
    assert all(e.is_error and e.file == str(f) for e in err.errors)
    assert str(err).split("\n") == [str(e) for e in err.errors]
    assert isinstance(err, ValueError)  # callers catching ValueError also catch bad config


def test_parse_paths_never_raises(tmp_path: Path) -> None:
    """``parse_paths`` returns the same findings as issues instead of raising."""
    f = tmp_path / "bad.yaml"
    f.write_text(_BAD_VS + "---\n" + _vs("good"))
    config = parse_paths([f])
    assert len(config.errors) == 4
    assert [r.name for r in config.resources] == ["good"]


def test_warnings_are_kept_on_the_config_set() -> None:
    """Warnings do not fail a load; they stay on ``ConfigSet.issues`` (and ``.warnings``)."""
    text = _vs("r").replace("  - route:", "  - websocketUpgrade: true\n    route:")
    config = load_yaml(text)
    assert config.errors == ()
    assert len(config.warnings) == 1 and config.issues == config.warnings
    assert not config.warnings[0].is_error


def test_unenforced_field_warning_names_the_field() -> None:
    """A field libmesh parses but does not act on is named in a warning, at its line."""
    text = _yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: bookinfo}
        spec:
          host: reviews
          trafficPolicy:
            loadBalancer: {simple: ROUND_ROBIN}
            tls:
              mode: ISTIO_MUTUAL
        """
    )
    (warning,) = load_yaml(text, file="dr.yaml").issues
    assert str(warning) == (
        "warning: dr.yaml:8: DestinationRule bookinfo/reviews: spec.trafficPolicy.tls: "
        "accepted by Istio, not yet enforced by libmesh (mTLS arrives with the SPIFFE identity work)"
    )


def test_unenforced_kind_warns_once() -> None:
    """A kind libmesh validates but does not act on gets one warning for the whole resource."""
    text = _yaml(
        """
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: ns}
        spec:
          egress: [{hosts: ["./*"]}]
        """
    )
    (warning,) = load_yaml(text, file="s.yaml").issues
    assert str(warning).startswith(
        "warning: s.yaml:1: Sidecar ns/default: Sidecar is accepted by Istio, not yet enforced"
    )


def test_namespace_as_written_or_default() -> None:
    """Resources without a namespace take the loader's; one written in the YAML wins."""
    config = load_yaml(_vs("a") + "---\n" + _vs("b", namespace="other"), namespace="prod")
    assert [(r.namespace, r.name) for r in config.resources] == [(None, "a"), ("other", "b")]


# --- the CLI ---------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A valid file, a file with only a warning and an invalid one."""
    paths = {"ok": tmp_path / "ok.yaml", "warn": tmp_path / "warn.yaml", "bad": tmp_path / "bad.yaml"}
    paths["ok"].write_text(_vs("reviews"))
    paths["warn"].write_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
        "spec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n"
    )
    paths["bad"].write_text(_BAD_VS)
    return paths


def test_cli_valid(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 and a one-line summary for valid config."""
    assert main(["validate", str(files["ok"])]) == 0
    out, err = capsys.readouterr()
    assert out == "valid: 1 resources, 0 errors, 0 warnings\n" and err == ""


def test_cli_warnings_are_prefixed(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings are printed with ``warning:`` and do not change the exit code."""
    assert main(["validate", str(files["warn"])]) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(
        f"warning: {files['warn']}:7: DestinationRule default/reviews: spec.trafficPolicy.tls: "
    )
    assert lines[-1] == "valid: 1 resources, 0 errors, 1 warnings"


def test_cli_strict_turns_warnings_into_errors(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--strict`` fails on warnings and prints them as errors."""
    assert main(["validate", "--strict", str(files["warn"])]) == 1
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0].startswith(
        f"error: {files['warn']}:7: DestinationRule default/reviews: spec.trafficPolicy.tls: "
    )
    assert lines[-1] == "invalid: 1 resources, 1 errors, 0 warnings"


def test_cli_invalid(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1 with every error on stderr, each with file and line."""
    assert main(["validate", str(files["ok"]), str(files["bad"])]) == 1
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert [line.split(": ")[0] for line in lines[:-1]] == [f"{files['bad']}:{n}" for n in (10, 12, 17, 18)]
    assert lines[-1] == "invalid: 1 resources, 4 errors, 0 warnings"


def test_cli_directory(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A directory is validated as a whole."""
    files["bad"].unlink()
    assert main(["validate", str(files["ok"].parent)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "valid: 2 resources, 0 errors, 1 warnings"


def test_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that does not exist makes the config invalid (exit 1), not a crash."""
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert f"{tmp_path / 'nope.yaml'}: no such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["validate"], ["validate", "--bogus", "x.yaml"], [], ["frobnicate"]])
def test_cli_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Usage errors exit 2 with the usage on stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: libmesh" in capsys.readouterr().err


def test_a_resource_defined_twice_keeps_its_last_definition_with_a_warning(tmp_path: Path) -> None:
    """As after `kubectl apply` of both: one object per kind, namespace and name, the later one; the
    earlier is named in a warning so the user sees the clash."""
    doc = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews, subset: {}}}}}]\n"
    )
    (tmp_path / "a.yaml").write_text(doc.format("v1"))
    (tmp_path / "b.yaml").write_text(
        doc.format("v2") + "---\n" + doc.format("v3").replace("reviews}", "ratings}", 1)
    )
    config = parse_paths([tmp_path])
    subsets = {
        d.resource.metadata.name: d.resource.spec.http[0].route[0].destination.subset
        for d in config.documents
    }
    assert subsets == {"reviews": "v2", "ratings": "v3"}
    (warning,) = [i for i in config.issues if "defined again" in i.message]
    assert not warning.is_error
    assert str(warning).startswith(f"warning: {tmp_path / 'b.yaml'}:1: VirtualService default/reviews")
    assert warning.message.endswith(f"replaces the one at {tmp_path / 'a.yaml'}:1")
    # Same name in another namespace, or another kind, is another object.
    other = doc.format("v1").replace("{name: reviews}", "{name: reviews, namespace: prod}")
    assert len(parse_yaml(doc.format("v1") + "---\n" + other).documents) == 2
