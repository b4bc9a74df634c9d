"""Full-match regexes: every engine gives RE2's answer, hostile patterns go to RE2, validation is RE2's."""

from __future__ import annotations

import doctest
import itertools
import re
import warnings

import pytest
import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libmesh.routing import regex
from libmesh.routing.regex import Engine, InvalidRegexError, compile_full_match, validate_re2

from ..conftest import compiled


def reference(pattern: str, value: str) -> bool:
    """RE2's own answer through the public google-re2 API (bytes, so lone surrogates can be tested too)."""
    return re2.compile(pattern).fullmatch(value.encode("utf-8", "surrogatepass")) is not None


# (pattern, engine compile_full_match must choose). Together they cover every engine, both newline modes,
# case folding, every escape form the translator handles, and syntax it leaves to RE2.
ENGINES: list[tuple[str, Engine]] = [
    # literals and literal sets
    (r"/api/v1/health", Engine.LITERAL),
    (r"", Engine.LITERAL),
    (r"^/foo$", Engine.LITERAL),
    (r"\A/foo\z", Engine.LITERAL),
    (r"^^a$$", Engine.LITERAL),
    (r"/a/{id}", Engine.LITERAL),  # not a repetition in RE2: literal braces
    (r"x{,3}", Engine.LITERAL),  # ditto (Python would read x{0,3})
    (r"\x{41}\101\x42\.\-", Engine.LITERAL),
    (r"a\tb\nc", Engine.LITERAL),
    (r"GET|POST|PUT", Engine.LITERAL_SET),
    (r"/v[12]/health", Engine.LITERAL_SET),
    (r"(^a|b)c", Engine.LITERAL_SET),
    (r"a{2,4}b?", Engine.LITERAL_SET),
    (r"[\d-z]", Engine.LITERAL_SET),
    (r"(?i)get|post", Engine.LITERAL_SET),
    (r"(?i)example\.com", Engine.LITERAL),
    (r"(?i)K", Engine.LITERAL),
    # prefixes, suffixes, globs
    (r"/api/.*", Engine.PREFIX),
    (r"/api/.+", Engine.PREFIX),
    (r"/api/.{3,}", Engine.PREFIX),
    (r".*", Engine.PREFIX),
    (r".+", Engine.PREFIX),
    (r"(?s)/api/.*", Engine.PREFIX),
    (r"(/a|/bb)/.*", Engine.PREFIX),
    (r"(?i)prefix\.example\..*", Engine.PREFIX),
    (r".*\.css", Engine.SUFFIX),
    (r".+\.css", Engine.SUFFIX),
    (r".*\.(?:css|js)", Engine.SUFFIX),
    (r"(?i).*\.example\.com", Engine.SUFFIX),
    (r".*/ns/.*/.*", Engine.GLOB),
    (r"spiffe://.*/ns/foo/sa/all-td", Engine.GLOB),
    (r"a.*b.+c", Engine.GLOB),
    (r".*a.*a.*a.*a.*a.*b", Engine.GLOB),
    (r"(?s)a.*b", Engine.GLOB),
    (r"(?i)a.*B.*c", Engine.GLOB),
    # Python's re, proven safe
    (r"/api/v[0-9]+/users/[^/]+/orders", Engine.PYTHON_RE),
    (r"\d+", Engine.PYTHON_RE),
    (r"\w+@\w+\.com", Engine.PYTHON_RE),
    (r"\s*x\S+", Engine.PYTHON_RE),
    (r"v\d+\.\d+(-[a-z]+)?", Engine.PYTHON_RE),
    (r"(ab)*c", Engine.PYTHON_RE),
    (r"[^a]", Engine.PYTHON_RE),
    (r"[^/]*/", Engine.PYTHON_RE),
    (r"a$\n", Engine.PYTHON_RE),  # RE2's $ is the end of text: never matches
    (r"a.c", Engine.PYTHON_RE),
    (r"(?s)a.c", Engine.PYTHON_RE),
    (r"[a-c]{2,3}x[0-9]{1,1000}", Engine.PYTHON_RE),
    (r"(/a|/bb)/.+", Engine.PYTHON_RE),  # overlapping branches, outside repetition
    (r"(?i)[a-c]+x", Engine.PYTHON_RE),
    (r"(?i)[^a]", Engine.PYTHON_RE),
    (r"(?i)\w+", Engine.PYTHON_RE),
    (r"(?i:a)B+", Engine.PYTHON_RE),
    (r"(?i)a(?-i)B+", Engine.PYTHON_RE),
    (r"a(?i)b+|C", Engine.PYTHON_RE),  # (?i) lasts to the end of the group, across |
    (r"(?U)a+?b", Engine.PYTHON_RE),
    (r"[\x{100}-\x{10FFFF}]+", Engine.PYTHON_RE),
    (r"\x{1F600}+x", Engine.PYTHON_RE),
    # RE2: unsafe for backtracking
    (r"(a+)+$", Engine.RE2),
    (r"(a|aa)*b", Engine.RE2),
    (r"(.*a){20}", Engine.RE2),
    (r"(x+x+)+y", Engine.RE2),
    (r"(\w+\s?)*$", Engine.RE2),
    (r"(a?){10}a{10}b*", Engine.RE2),
    (r"(a?){10}a{10}", Engine.LITERAL_SET),  # finite: 11 strings
    (r"(ab)*a", Engine.RE2),
    (r"^(.*?;)?(user=dev-123)(;.*)?", Engine.RE2),
    (r"spiffe://.+/ns/foo/(.+/|)sa/sa-only(/.+)?", Engine.RE2),
    (r"(a|a)(a|a)(a|a)(a|a)(a|a)b*", Engine.RE2),
    (
        r"foo\nbar.*x",
        Engine.RE2,
    ),  # a newline in a glob piece: leftmost placement is not exact  # 2^5 passes is over the cap
    # RE2: syntax left to it
    (r"[[:alpha:]]+", Engine.RE2),
    (r"\pN+", Engine.RE2),
    (r"\p{Greek}+", Engine.RE2),
    (r"a\b", Engine.RE2),
    (r"\Qa.b\E", Engine.RE2),
    (r"(?m)^a$", Engine.RE2),
    (r"(?i)é", Engine.RE2),
    (r"(?i)\W", Engine.RE2),
]

EXTRA_CHARS = [
    "a",
    "A",
    "b",
    "k",
    "K",
    "\u212a",
    "s",
    "\u017f",
    "\n",
    "\t",
    "\x0b",
    " ",
    "/",
    ".",
    "-",
    "1",
    "é",
]


@pytest.mark.parametrize(("pattern", "engine"), ENGINES)
def test_engine_choice(pattern: str, engine: Engine) -> None:
    assert compile_full_match(pattern).engine is engine, compile_full_match(pattern).reason


def _alphabet(pattern: str) -> list[str]:
    chars = {c for c in pattern if c.isprintable() and c != "\\"} | set(EXTRA_CHARS)
    return sorted(chars)


@pytest.mark.parametrize("pattern", [p for p, _ in ENGINES])
def test_exhaustive_short_values_agree_with_re2(pattern: str) -> None:
    matcher = compile_full_match(pattern)
    alphabet = ["a", "B", "b", "/", ".", "\n", "k", "\u212a", "x", "1", "c"]
    values = ["".join(t) for n in range(4) for t in itertools.product(alphabet, repeat=n)]
    wrong = [v for v in values if matcher(v) != reference(pattern, v)]
    assert not wrong, f"{pattern!r} ({matcher.engine}) disagrees with RE2 on {wrong[:5]!r}"


def _values(pattern: str) -> st.SearchStrategy[str]:
    """Random values near the pattern's language: strings Python's re generates from the pattern text (its
    meaning may differ: RE2 is the oracle), random text over the pattern's characters, and edits of both."""
    alphabet = st.sampled_from(_alphabet(pattern))
    sources: list[st.SearchStrategy[str]] = [st.text(alphabet, max_size=24)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. "possible nested set": Python reads it differently
            re.compile(pattern)
        sources.append(st.from_regex(pattern, fullmatch=True).filter(lambda v: len(v) < 200))
    except (re.error, FutureWarning):
        pass
    base = st.one_of(sources)

    @st.composite
    def edited(draw: st.DrawFn) -> str:
        value = draw(base)
        for _ in range(draw(st.integers(0, 2))):
            at = draw(st.integers(0, len(value)))
            op = draw(st.sampled_from(["insert", "delete", "replace"]))
            ch = draw(alphabet)
            if op == "insert":
                value = value[:at] + ch + value[at:]
            elif op == "delete":
                value = value[:at] + value[at + 1 :]
            else:
                value = value[:at] + ch + value[at + 1 :]
        return value

    return st.one_of(base, edited())


@pytest.mark.parametrize("pattern", [p for p, e in ENGINES])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_random_values_agree_with_re2(pattern: str, data: st.DataObject) -> None:
    matcher = compile_full_match(pattern)
    value = data.draw(_values(pattern), label="value")
    assert matcher(value) == reference(pattern, value), f"{pattern!r} ({matcher.engine}) on {value!r}"


_ATOMS = [
    "a",
    "b",
    "A",
    "k",
    "/",
    r"\.",
    ".",
    r"\d",
    r"\w",
    r"\s",
    r"\W",
    "[ab]",
    "[^a]",
    "[A-Z]",
    r"\n",
    "^",
    "$",
]
_QUANTIFIERS = ["", "", "*", "+", "?", "{2}", "{1,3}", "{2,}", "*?"]
_SHORT_VALUES = [
    "".join(t) for n in range(4) for t in itertools.product(["a", "b", "A", "/", "\n", "k"], repeat=n)
]


def _patterns() -> st.SearchStrategy[str]:
    """Random RE2 patterns over a small vocabulary: atoms, repetition, groups, alternation and flags."""
    atom = st.builds(lambda a, q: a + q, st.sampled_from(_ATOMS), st.sampled_from(_QUANTIFIERS))

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.lists(inner, min_size=1, max_size=4).map("".join),
            st.builds(
                lambda branches, q: "(" + "|".join(branches) + ")" + q,
                st.lists(inner, min_size=2, max_size=3),
                st.sampled_from(_QUANTIFIERS),
            ),
            st.builds(lambda flag, body: flag + body, st.sampled_from(["(?i)", "(?s)", "(?-i)"]), inner),
            st.builds(lambda body: "(?i:" + body + ")", inner),
        )

    return st.recursive(atom, extend, max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(pattern=_patterns(), extra=st.lists(st.text(st.sampled_from(EXTRA_CHARS), max_size=10), max_size=20))
def test_random_patterns_agree_with_re2(pattern: str, extra: list[str]) -> None:
    try:
        matcher = compile_full_match(pattern)
    except InvalidRegexError:
        return  # e.g. a repetition of ^, which RE2 refuses
    for value in [*_SHORT_VALUES, *extra]:
        assert matcher(value) == reference(pattern, value), f"{pattern!r} ({matcher.engine}) on {value!r}"


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (r"(a+)+$", "a" * 50_000 + "b"),
        (r"(a|aa)*b", "a" * 50_000 + "c"),
        (r"(.*a){20}", "a" * 50_000 + "b"),
        (r"(x+x+)+y", "x" * 50_000),
        (r"(\w+\s?)*$", "word " * 10_000 + "!"),
        (r"^(.*?;)?(user=dev-123)(;.*)?", "a;" * 25_000),
    ],
)
def test_pathological_patterns_go_to_re2(pattern: str, value: str) -> None:
    matcher = compile_full_match(pattern)
    assert matcher.engine is Engine.RE2
    assert "backtracking" in matcher.reason
    # On Python's re these inputs would run for longer than the universe; RE2 answers at once.
    assert matcher(value) is False


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (r"a", "a\n", False),  # no implicit trailing newline
        (r"a$", "a\n", False),  # RE2's $ is the end of text, unlike Python's
        (r"/api/.*", "/api/x\ny", False),  # . does not match a newline
        (r"(?s)/api/.*", "/api/x\ny", True),
        (r".*\.css", "a\nb.css", False),
        (r".*/ns/.*/.*", "/ns/a\n/b", False),
        (r".*/ns/.*/.*", "x/ns/a/b", True),
        (r"foo\nbar.*x", "foo\nbarZZx", True),
        (r"(?s)a.*\nb.*c", "a\n\nb\nc", True),
        (r"[^a]", "\n", True),  # negated classes do match a newline in RE2
        (r"\d", "\u0663", False),  # RE2's \d is ASCII; Python's would match ARABIC-INDIC DIGIT THREE
        (r"\w", "é", False),
        (r"\s", "\x0b", False),  # RE2's \s has no vertical tab
        (r"\s", "\x0c", True),
        (r"(?i)k", "\u212a", True),  # RE2 folds the Kelvin sign with k
        (r"(?i).*\.example\.com", "\u017fhop.example.com", True),  # and long s with s
        (r"(?i)example\.com", "EXAMPLE.COM", True),
        (r"(?i)[a-c]+x", "AbCX", True),
        (r".", "\ud800", True),  # a lone surrogate is one character for both engines
        (r"\pL", "\ud800", False),
        (r"x{,3}", "x{,3}", True),
        (r"x{,3}", "xx", False),
    ],
)
def test_semantics_follow_re2(pattern: str, value: str, expected: bool) -> None:
    assert reference(pattern, value) is expected  # the table itself is RE2's truth
    assert compile_full_match(pattern)(value) is expected


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(?=a)a", "invalid perl operator: (?="),
        ("(?!a)b", "invalid perl operator: (?!"),
        ("(?<=a)b", "invalid perl operator: (?<="),
        ("(?<!a)b", "invalid perl operator: (?<!"),
        (r"(a)\1", r"invalid escape sequence: \1"),
        ("(?P<n>a)(?P=n)", "invalid perl operator: (?P"),
        (r"a\Z", r"invalid escape sequence: \Z"),
        ("(?>a)", "invalid perl operator: (?>"),
        ("a*+", "bad repetition operator: *+"),
        ("a{1001}", "invalid repetition size"),
        ("(abc", "missing )"),
        ("[z-a]", "invalid character class range"),
        (r"\C", r"invalid escape sequence: \C"),  # RE2 allows it; Istio's validation does not
        (r"a\Cb", r"invalid escape sequence: \C"),
    ],
)
def test_validate_re2_rejects_non_re2_syntax(pattern: str, fragment: str) -> None:
    problem = validate_re2(pattern)
    assert problem is not None and fragment in problem
    assert "Istio uses RE2 syntax" in problem
    with pytest.raises(InvalidRegexError, match=re.escape(fragment)):
        compile_full_match(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "a",
        "/api/.*",
        r"\\C",
        r"\QC\E",
        r"\Q\C\E",
        "(?P<n>a)",
        "(?<n>a)",
        r"\pN",
        "[[:alpha:]]",
        r"\z",
        "x" * 1024,
    ],
)
def test_validate_re2_accepts_re2_syntax(pattern: str) -> None:
    assert validate_re2(pattern) is None


def test_validate_re2_length_limit_counts_utf8_bytes() -> None:
    assert validate_re2("a" * 1025) == "regex is too large, max length allowed is 1024"
    assert validate_re2("é" * 512) is None
    assert validate_re2("é" * 513) == "regex is too large, max length allowed is 1024"
    with pytest.raises(InvalidRegexError, match="too large"):
        compile_full_match("a" * 1025)


def test_validate_re2_rejects_a_pattern_with_no_utf8_form() -> None:
    problem = validate_re2("a\ud800")
    assert problem is not None and problem.startswith("invalid regex:")


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (r".*a.*a.*a.*a.*a.*b", "a" * 50_000, False),  # O(n^5) for a naive backtracking search
        (r".*a.*a.*a.*a.*a.*b", "a" * 50_000 + "b", True),
        (r"x.*/ns/.*/.*", "x" + "/n" * 20_000 + "s/", False),
        (r"x.*/ns/.*/.*", "x" + "/ns" * 20_000, True),
        (r"(?i)a.*b.+c", "A" * 50_000 + "B", False),
    ],
)
def test_globs_commit_to_leftmost_pieces(pattern: str, value: str, expected: bool) -> None:
    matcher = compile_full_match(pattern)
    assert matcher.engine is Engine.GLOB
    assert matcher(value) is expected
    assert reference(pattern, value) is expected


def test_invalid_regex_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Istio uses RE2 syntax"):
        compile_full_match("(?=x)")


def test_matchers_answer_with_bools_and_explain_themselves() -> None:
    for pattern, _ in ENGINES:
        matcher = compile_full_match(pattern)
        assert matcher("") in (True, False) and type(matcher("zz")) is bool
        assert matcher.pattern == pattern and matcher.reason
        assert str(matcher.engine) in repr(matcher)


def test_case_insensitive_fast_paths_hand_non_ascii_values_to_re2() -> None:
    matcher = compile_full_match(r"(?i)example\.com")
    assert matcher.engine is Engine.LITERAL and "ASCII" in matcher.reason
    assert matcher("ExAmPlE.cOm") and not matcher("example.co")
    assert not matcher("éxample.com")


def test_public_wrapper_fallback_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were the binding's internals ever to change, RE2 runs through google-re2's public API instead.
    monkeypatch.setattr(regex, "_use_native", False)
    uncached = compile_full_match.__wrapped__
    for pattern in [r"(a+)+$", r"\pN+x", r"(?i)k.*", r"foo\nbar.*x", r"[[:alpha:]]+"]:
        matcher = uncached(pattern)
        for value in [
            "aaab",
            "aaa",
            "12x",
            "\u212axyz",
            "Kx",
            "foo\nbarx",
            "foo\nbar\nx",
            "abc",
            "\ud800",
            "",
        ]:
            assert matcher(value) == reference(pattern, value), (pattern, value)


def test_compiled_matchers_are_cached() -> None:
    assert compile_full_match("/cached/.*") is compile_full_match("/cached/.*")


def test_docstring_examples() -> None:
    if compiled(regex):
        pytest.skip("doctest finds no Python functions in a compiled module (the pure build runs them)")
    failures, tried = doctest.testmod(regex, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
