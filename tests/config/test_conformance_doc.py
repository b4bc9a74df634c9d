"""docs/conformance.md matches the support table it is generated from, and that table names real fields."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from libmesh.config._schema import fields_of
from libmesh.config.resources import RESOURCE_KINDS
from libmesh.config.support import FIELD_SUPPORT, KIND_NOTES, Support

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_conformance", ROOT / "tools" / "gen_conformance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gen = _generator()


def _messages_by_name(enforced_only: bool) -> dict[str, type]:
    found: dict[str, type] = {}
    for kind in RESOURCE_KINDS.values():
        if enforced_only and gen.is_validated_only(kind):
            continue
        for cls in gen.messages(gen.spec_class(kind)):
            found[cls.__name__] = cls
    return found


def test_doc_is_up_to_date() -> None:
    """The generated tables in docs/conformance.md are what the generator produces now."""
    current = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    assert gen.update(current) == current, "docs/conformance.md is stale: run python tools/gen_conformance.py"


def test_check_mode() -> None:
    """``--check`` agrees with the comparison above (exit 0 when up to date)."""
    assert gen.main(["--check"]) == 0


@pytest.mark.parametrize("key", sorted(FIELD_SUPPORT))
def test_field_support_key_names_a_real_field(key: str) -> None:
    """Each FIELD_SUPPORT entry is ``Message.field_name`` of a message an enforced kind uses, with a reason."""
    message, _, field = key.partition(".")
    messages = _messages_by_name(enforced_only=True)
    assert message in messages, f"{key}: no message {message!r} under any enforced kind"
    names = [f.name for f in fields_of(messages[message])]
    assert field in names, f"{key}: {message} has no field {field!r} (fields: {', '.join(names)})"
    status, why = FIELD_SUPPORT[key]
    assert status is not Support.SUPPORTED and why, (
        f"{key}: entries are for fields not fully supported, with a reason"
    )


def test_kind_notes_name_real_kinds() -> None:
    """Each KIND_NOTES key is a kind libmesh reads."""
    assert sorted(set(KIND_NOTES) - set(RESOURCE_KINDS)) == []


def test_every_field_has_a_row() -> None:
    """The doc has one row per field of every message of every Istio kind, and every status is a known one."""
    for kind in gen.istio_kinds():
        root = gen.spec_class(kind)
        parents = gen.inherited(root)
        for cls in gen.messages(root):
            rows = list(gen.rows(kind, cls, parents))
            assert [r.field for r in rows] == [f"`{f.json}`" for f in fields_of(cls)]
            assert {r.status for r in rows} <= {s.value for s in Support} | {gen.VALIDATED_ONLY}


def test_fields_inside_an_unenforced_field_are_not_yet() -> None:
    """A message reached only through a ``not yet`` field is ``not yet`` in full (e.g. DR TLS settings)."""
    kind = RESOURCE_KINDS["DestinationRule"]
    root = gen.spec_class(kind)
    parents = gen.inherited(root)
    tls = _messages_by_name(enforced_only=True)["ClientTLSSettings"]
    assert parents[tls] == "TrafficPolicy.tls"
    assert {r.status for r in gen.rows(kind, tls, parents)} == {"not yet"}
