"""Conformance with Istio's own configuration corpus (see the corpus's SOURCES.md).

* Every file of the sample and test-data folders, and every ``*-valid.yaml`` of the CRD test data, is valid in
  Istio, so it must load without errors (one test per file).
* Every document of every ``*-invalid.yaml`` is rejected by Istio with the error its ``_err`` key quotes, so
  libmesh must reject it too (one test per document; the ``_err`` key is removed before loading).

Cases libmesh cannot implement are listed, with the reason, in :data:`KNOWN_EXCEPTIONS`; they are expected to
fail (strictly: a case that starts passing fails until it is taken off the list). ``test_corpus_counts``
prints the totals at the end of the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from libmesh.config import parse_paths, parse_yaml
from tests.conftest import CORPUS

VALID_DIRS = ("bookinfo-networking", "testdata-config", "validation-webhook-dataset", "samples-misc")
CRD_DIR = "validation-crd-testdata"

#: Test id -> why libmesh cannot implement the rule (e.g. a CEL rule with no equivalent). Keep this empty
#: unless a case is truly out of reach; a rule that is merely not written yet is a plain failure.
KNOWN_EXCEPTIONS: dict[str, str] = {}

# Outcome of each case that ran in this session, for the cross-check in test_corpus_counts.
_OUTCOMES: dict[str, bool] = {}


@dataclass(frozen=True)
class InvalidDoc:
    """One document of a ``*-invalid.yaml`` file, with its ``_err`` line blanked out.

    ``text`` keeps the document at its lines in the file (earlier lines are blank), so reported line
    numbers point into the original file.
    """

    file: str
    index: int
    line: int
    text: str
    err: str | None


def _valid_files() -> list[str]:
    if not CORPUS.is_dir():
        return []
    found = [str(p.relative_to(CORPUS)) for d in VALID_DIRS for p in sorted((CORPUS / d).rglob("*.yaml"))]
    found += [str(p.relative_to(CORPUS)) for p in sorted((CORPUS / CRD_DIR).glob("*/*-valid.yaml"))]
    return found


_DOC_START = re.compile(r"^---(\s|$)")


def split_invalid(rel: str, text: str) -> list[InvalidDoc]:
    """Split an invalid-cases file into its documents and take out each one's ``_err`` line.

    Documents that are only comments (cases disabled upstream) are left out.
    """
    lines = text.split("\n")
    starts = [0] + [i for i, line in enumerate(lines) if _DOC_START.match(line)]
    ends = [*starts[1:], len(lines)]
    docs: list[InvalidDoc] = []
    for start, end in zip(starts, ends, strict=True):
        body = [""] * start + lines[start:end]
        if start and _DOC_START.match(body[start]):
            body[start] = ""  # the marker itself; the document is parsed alone
        err: str | None = None
        for i in range(start, end):
            if body[i].startswith("_err:"):
                err = str(yaml.safe_load(body[i])["_err"])
                body[i] = ""
        content = [i for i in range(start, end) if body[i].strip() and not body[i].lstrip().startswith("#")]
        if not content:
            continue
        docs.append(InvalidDoc(rel, len(docs), content[0] + 1, "\n".join(body), err))
    return docs


def _invalid_docs() -> list[InvalidDoc]:
    if not CORPUS.is_dir():
        return []
    docs: list[InvalidDoc] = []
    for p in sorted((CORPUS / CRD_DIR).glob("*/*-invalid.yaml")):
        docs.extend(split_invalid(str(p.relative_to(CORPUS)), p.read_text(encoding="utf-8")))
    return docs


def _doc_id(doc: InvalidDoc) -> str:
    return f"{doc.file}#{doc.index}"


VALID_FILES = _valid_files()
INVALID_DOCS = _invalid_docs()


def _params(ids: list[str], values: list[Any]) -> list[Any]:
    params: list[Any] = []
    for case_id, value in zip(ids, values, strict=True):
        why = KNOWN_EXCEPTIONS.get(case_id)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        params.append(pytest.param(value, id=case_id, marks=marks))
    return params


def _valid_errors(rel: str) -> list[str]:
    return [str(i) for i in parse_paths([CORPUS / rel]).errors]


def _invalid_errors(doc: InvalidDoc) -> list[str]:
    return [str(i) for i in parse_yaml(doc.text, file=doc.file).errors]


@pytest.mark.parametrize("rel", _params(VALID_FILES, list(VALID_FILES)))
def test_valid_file_loads(corpus: Path, rel: str) -> None:
    """A file Istio accepts loads without errors (warnings are allowed)."""
    errors = _valid_errors(rel)
    _OUTCOMES[rel] = not errors
    assert not errors, "Istio accepts this file, libmesh reported:\n" + "\n".join(errors)


@pytest.mark.parametrize("doc", _params([_doc_id(d) for d in INVALID_DOCS], list(INVALID_DOCS)))
def test_invalid_document_rejected(corpus: Path, doc: InvalidDoc) -> None:
    """A document Istio rejects is rejected by libmesh too."""
    assert doc.err is not None, f"{doc.file}:{doc.line}: the document has no _err key"
    errors = _invalid_errors(doc)
    _OUTCOMES[_doc_id(doc)] = bool(errors)
    assert errors, f"{doc.file}:{doc.line}: accepted, but Istio rejects it with: {doc.err}"


def test_known_exceptions_name_real_cases(corpus: Path) -> None:
    """Every entry of KNOWN_EXCEPTIONS names a case that exists, so stale entries do not pile up."""
    ids = set(VALID_FILES) | {_doc_id(d) for d in INVALID_DOCS}
    assert sorted(set(KNOWN_EXCEPTIONS) - ids) == []


def test_split_invalid_keeps_lines_and_drops_err() -> None:
    """The splitter keeps each document at its file lines, drops ``_err`` and skips commented-out cases."""
    text = (
        "_err: 'spec: Required value'\n"
        "kind: A\n"
        "---\n"
        "#_err: TODO\n"
        "#kind: B\n"
        "---\n"
        '_err: "bad: thing"\n'
        "kind: C\n"
    )
    docs = split_invalid("f.yaml", text)
    assert [(d.index, d.line, d.err) for d in docs] == [(0, 2, "spec: Required value"), (1, 8, "bad: thing")]
    assert docs[1].text.split("\n")[7] == "kind: C"
    assert "_err" not in docs[0].text and "_err" not in docs[1].text


def _key_phrase(err: str) -> str:
    """The part of an ``_err`` text a user would recognise: without the field path and the CEL preamble."""
    phrase = err.rsplit(": ", 1)[-1]
    return re.sub(r"^\S+ in body ", "", phrase).strip().lower()


def test_corpus_counts(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Compute the conformance numbers in one pass, print them, and check them against the per-case tests."""
    valid_ok = {rel: not _valid_errors(rel) for rel in VALID_FILES}
    rejected: dict[str, bool] = {}
    phrase_hits = 0
    for doc in INVALID_DOCS:
        errors = _invalid_errors(doc)
        rejected[_doc_id(doc)] = bool(errors)
        if errors and doc.err and _key_phrase(doc.err) in "\n".join(errors).lower():
            phrase_hits += 1
    n_valid_ok = sum(valid_ok.values())
    n_rejected = sum(rejected.values())
    summary = (
        f"\nIstio corpus conformance: valid files loaded {n_valid_ok}/{len(valid_ok)}, "
        f"invalid documents rejected {n_rejected}/{len(rejected)} "
        f"({phrase_hits} with the _err key phrase in the message), "
        f"known exceptions {len(KNOWN_EXCEPTIONS)}"
    )
    with capsys.disabled():  # shown even in ``pytest -q``
        print(summary)
    assert len(valid_ok) == len(VALID_FILES) > 0
    assert len(rejected) == len(INVALID_DOCS) > 0
    # The one-pass results agree with each per-case test that ran (loading is deterministic and stateless).
    recorded = {**valid_ok, **rejected}
    differing = {k: v for k, v in _OUTCOMES.items() if recorded[k] != v}
    assert differing == {}
