r"""Full-match regular expressions for routing: RE2's answers, at string-operation speed where that is safe.

Istio's ``regex`` string matches are RE2 expressions that must match the *whole* value (Envoy calls
``RE2::FullMatch``). :func:`compile_full_match` turns one into a :class:`FullMatcher`, a ``str -> bool``
callable that runs the cheapest engine giving exactly RE2's answer while staying linear-time on any input:
header values and paths come from untrusted clients, so a pattern that makes a backtracking engine explode
must never run on one. ``FullMatcher.engine`` says which engine a pattern got and ``.reason`` why.

Engines, cheapest first:

``literal``, ``literal-set``
    The pattern denotes a few fixed strings (``GET|POST``, ``/v[12]/health``): ``==`` or a frozenset lookup.
``prefix``, ``suffix``
    A few fixed strings then ``.*``/``.+``, or the reverse (``/api/.*``, ``.*\.(css|js)``): ``startswith`` or
    ``endswith``, and no newline in the value (``.`` does not match ``\n`` without ``(?s)``).
``glob``
    Literal pieces joined by ``.*``/``.+`` (``.*/ns/.*/.*``): placing each middle piece at its leftmost
    occurrence is optimal (it leaves the most room for the rest), so the pattern becomes Python's
    ``piece(?>.*?piece)(?>.*?piece).*piece``, whose atomic groups commit to the leftmost occurrences and
    never retry them: linear-time. (Measured faster than ``str.find`` in a Python loop.)
``python-re``
    Python's backtracking :mod:`re`, for patterns proven immune to catastrophic backtracking (see below).
``re2``
    Everything else, through RE2's own matcher, which is linear-time by construction.

Case-insensitive patterns (``(?i)``, common for hosts) are matched here only if their letters are ASCII, and
then only for ASCII values (lower-casing both, or ``[aA]`` classes, is exact there); RE2 folds case by Unicode
rules (``k`` also matches the Kelvin sign), so every non-ASCII value is handed to RE2.

When a backtracking engine is safe
----------------------------------
A backtracking matcher meets *choice points*: the branches of ``|``, and at each ``*``, ``+``, ``?`` or
``{m,n}`` "one more iteration or stop". It tries one option and, when what follows fails, undoes the work
and tries the next. Time explodes when several options can consume the same characters, so the same input
is split many ways (``(a+)+`` splits a run of n ``a``\ s in 2^n ways; ``(.*a){20}`` in O(n^20)).

A pattern runs on Python's ``re`` only if *every choice is decided by the next input character*. For each
option of a choice point take the characters it can start with, plus, if it can match the empty string,
those that may follow the choice point; "end of input" counts as one more character. The check requires
these sets to be pairwise disjoint at every choice point (the LL(1) condition of grammars; two branches that
can both match the empty string share what follows, so they clash) and no repeated part that can match the
empty string (an iteration that makes no progress). Then, at
any position, at most one option can consume the next character and every other option fails before
consuming anything, after visiting each pattern node a bounded number of times. The search is therefore a
single path that consumes the input plus, at each step, dead ends whose size depends on the pattern only:
O(len(value) x size(pattern)^2) whatever the value. What may follow a node is computed as a superset, so
the check can only err towards RE2.

One relaxation: an alternation *outside any repetition* may have overlapping branches (``/(api|apis)/.+``).
Each branch then restarts the rest of the search, which is linear by the argument above, so such an
alternation multiplies the work by its width; the product of those widths is capped at 16 (a chain of
``(a|a)`` would otherwise double per link). Inside a repetition the same overlap would multiply per
iteration, i.e. per input character, so it is refused.

The check refuses ``(a+)+``, ``(a|aa)*b``, ``(.*a){20}`` and also merely polynomial shapes such as
``(.*;)?x`` (quadratic); those go to RE2.

Keeping RE2's meaning
---------------------
The pattern is parsed here with RE2's syntax; anything outside a well-understood subset (``\b``, ``\pN``,
``[[:alpha:]]``, ``\Q..\E``, ``(?m)`` anchors, ...) goes to RE2 untouched. The Python pattern is *generated*
from the parse, never passed through, so Python never reads RE2 syntax its own way: classes are spelled as
explicit code-point ranges (RE2's ``\d \w \s`` are ASCII and its ``\s`` lacks ``\v``; Python's are Unicode),
``^``/``$``/``\A``/``\z`` become ``\A``/``\Z`` (RE2's ``$`` never matches before a trailing newline),
case-insensitive letters become ``[aA]`` pairs, and groups become non-capturing. A full match is a yes/no
question about the whole value, so greedy versus lazy repetition and leftmost-first versus longest
alternation cannot change the answer.

Values are matched as code points: RE2 gets the value UTF-8 encoded (lone surrogates, which Python strings
can hold, are passed through as their 3-byte form, which RE2 reads as one character, as Python's ``re`` does).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

import re2

from ..errors import LibmeshError

__all__ = [
    "MAX_REGEX_LENGTH",
    "Engine",
    "FullMatcher",
    "InvalidRegexError",
    "compile_full_match",
    "validate_re2",
]

#: Istio refuses longer regexes (it measures bytes of UTF-8, as Go's ``len`` does), approximating the RE2
#: program-size limit Envoy enforces.
MAX_REGEX_LENGTH = 1024

_SYNTAX_HINT = "Istio uses RE2 syntax (https://github.com/google/re2/wiki/Syntax)"

_VALIDATE_OPTIONS = re2.Options()
_VALIDATE_OPTIONS.log_errors = False  # RE2 would otherwise print every rejected pattern to stderr

_MATCH_OPTIONS = re2.Options()
_MATCH_OPTIONS.log_errors = False
_MATCH_OPTIONS.never_capture = True  # a yes/no answer needs no submatches; lets RE2 skip capture tracking

# The google-re2 wrapper's fullmatch() decodes offsets and builds a match object on each call, about 3 us
# on a short path; its compiled object underneath answers the same question in about 0.5 us. Use it when the
# installed binding has the expected shape, the wrapper otherwise.
try:
    from re2 import _re2 as _native

    _ANCHOR_BOTH = _native.RE2.Anchor.ANCHOR_BOTH
    _use_native = callable(_native.RE2)
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed google-re2
    _native = None
    _ANCHOR_BOTH = None
    _use_native = False


class InvalidRegexError(LibmeshError, ValueError):
    """A pattern that is not an RE2 expression Istio accepts; the message says why."""


class Engine(enum.StrEnum):
    """Which engine a :class:`FullMatcher` runs (see the module documentation)."""

    LITERAL = "literal"
    LITERAL_SET = "literal-set"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    GLOB = "glob"
    PYTHON_RE = "python-re"
    RE2 = "re2"


def validate_re2(pattern: str) -> str | None:
    r"""Why ``pattern`` is not an RE2 expression Istio accepts, or ``None`` when it is.

    Too long (over 1024 bytes), not RE2 syntax (lookarounds, backreferences, possessive repetition, ``\Z``
    are Perl/Python-only), or ``\C`` (any byte), which RE2 accepts but Istio's validation refuses.

    >>> validate_re2("/api/v[0-9]+/.*") is None
    True
    >>> validate_re2("(?<=a)b")
    'invalid regex: invalid perl operator: (?<=; Istio uses RE2 syntax (https://github.com/google/re2/wiki/Syntax)'
    """
    if len(pattern.encode("utf-8", "surrogatepass")) > MAX_REGEX_LENGTH:
        return f"regex is too large, max length allowed is {MAX_REGEX_LENGTH}"
    try:
        re2.compile(pattern, options=_VALIDATE_OPTIONS)
    except re2.error as e:
        detail = e.args[0] if e.args else "syntax error"
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        return f"invalid regex: {detail}; {_SYNTAX_HINT}"
    except (TypeError, ValueError) as e:  # e.g. a lone surrogate, which has no UTF-8 form
        return f"invalid regex: {e}"
    if _has_any_byte_escape(pattern):
        return f"invalid regex: invalid escape sequence: \\C; {_SYNTAX_HINT}"
    return None


def _has_any_byte_escape(pattern: str) -> bool:
    r"""Whether ``pattern`` uses ``\C`` outside a ``\Q...\E`` quote (inside a class RE2 refuses it itself)."""
    i = pattern.find("\\")
    while i >= 0:
        nxt = pattern[i + 1 : i + 2]
        if nxt == "C":
            return True
        if nxt == "Q":
            end = pattern.find("\\E", i + 2)
            if end < 0:
                return False
            i = end
        i = pattern.find("\\", i + 2)
    return False


# --- matchers ------------------------------------------------------------------------------------------


class FullMatcher:
    """A compiled full-match regex: ``matcher(value)`` is True when the whole ``value`` matches.

    ``pattern`` is the RE2 pattern as written, ``engine`` the :class:`Engine` chosen for it and ``reason``
    a short explanation of that choice (for docs, tests and ``explain``). Matchers are immutable and safe to
    share between threads.
    """

    __slots__ = ("engine", "pattern", "reason")

    def __init__(self, pattern: str, engine: Engine, reason: str) -> None:
        self.pattern = pattern
        self.engine = engine
        self.reason = reason

    def __call__(self, value: str) -> bool:
        """Whether the whole of ``value`` matches the pattern."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<FullMatcher {self.pattern!r} engine={self.engine.value}>"


class _Literal(FullMatcher):
    __slots__ = ("_literal",)

    def __init__(self, pattern: str, reason: str, literal: str) -> None:
        super().__init__(pattern, Engine.LITERAL, reason)
        self._literal = literal

    def __call__(self, value: str) -> bool:
        return value == self._literal


class _LiteralSet(FullMatcher):
    __slots__ = ("_strings",)

    def __init__(self, pattern: str, reason: str, strings: frozenset[str]) -> None:
        super().__init__(pattern, Engine.LITERAL_SET, reason)
        self._strings = strings

    def __call__(self, value: str) -> bool:
        return value in self._strings


class _Prefix(FullMatcher):
    """One of ``prefixes``, then characters other than a newline (any, when ``dotall``); at least
    ``min_len`` characters in all."""

    __slots__ = ("_dotall", "_min_len", "_prefixes")

    def __init__(
        self, pattern: str, reason: str, prefixes: tuple[str, ...], min_len: int, dotall: bool
    ) -> None:
        super().__init__(pattern, Engine.PREFIX, reason)
        self._prefixes = prefixes[0] if len(prefixes) == 1 else prefixes
        self._min_len = min_len
        self._dotall = dotall

    def __call__(self, value: str) -> bool:
        # The prefixes hold no newline (see _affix), so any newline would be in the .* part.
        return (
            value.startswith(self._prefixes)
            and len(value) >= self._min_len
            and (self._dotall or "\n" not in value)
        )


class _Suffix(FullMatcher):
    """Characters other than a newline (any, when ``dotall``), then one of ``suffixes``; at least
    ``min_len`` characters in all."""

    __slots__ = ("_dotall", "_min_len", "_suffixes")

    def __init__(
        self, pattern: str, reason: str, suffixes: tuple[str, ...], min_len: int, dotall: bool
    ) -> None:
        super().__init__(pattern, Engine.SUFFIX, reason)
        self._suffixes = suffixes[0] if len(suffixes) == 1 else suffixes
        self._min_len = min_len
        self._dotall = dotall

    def __call__(self, value: str) -> bool:
        return (
            value.endswith(self._suffixes)
            and len(value) >= self._min_len
            and (self._dotall or "\n" not in value)
        )


class _PythonRe(FullMatcher):
    """Python's ``re`` on a pattern generated here (for ``python-re`` and ``glob``)."""

    __slots__ = ("_fullmatch",)

    def __init__(self, pattern: str, reason: str, compiled: re.Pattern[str], engine: Engine) -> None:
        super().__init__(pattern, engine, reason)
        self._fullmatch = compiled.fullmatch

    def __call__(self, value: str) -> bool:
        return self._fullmatch(value) is not None


class _Re2(FullMatcher):
    """RE2's own matcher on the UTF-8 form of the value, anchored at both ends."""

    __slots__ = ("_match",)

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(pattern, Engine.RE2, reason)
        compiled = _native.RE2(pattern.encode(), _MATCH_OPTIONS)
        if not compiled.ok():  # pragma: no cover - validate_re2 ran first
            raise InvalidRegexError(f"invalid regex: {compiled.error()}")
        self._match = compiled.Match

    def __call__(self, value: str) -> bool:
        try:
            data = value.encode()
        except UnicodeEncodeError:
            data = value.encode("utf-8", "surrogatepass")
        return bool(self._match(_ANCHOR_BOTH, data, 0, len(data))[0][0] >= 0)


class _Re2Wrapper(FullMatcher):
    """RE2 through google-re2's public API: slower, for bindings whose internals differ from the expected."""

    __slots__ = ("_fullmatch",)

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__(pattern, Engine.RE2, reason)
        self._fullmatch = re2.compile(pattern, options=_MATCH_OPTIONS).fullmatch

    def __call__(self, value: str) -> bool:
        # Bytes skip the wrapper's per-call translation of offsets back to characters.
        return self._fullmatch(value.encode("utf-8", "surrogatepass")) is not None


class _AsciiOnly(FullMatcher):
    """Case-insensitive matching done here for ASCII values (lower-cased first when ``lower``), by RE2 for
    any other value, whose case folding follows Unicode."""

    __slots__ = ("_fallback", "_inner", "_lower")

    def __init__(self, inner: FullMatcher, fallback: FullMatcher, lower: bool) -> None:
        super().__init__(
            inner.pattern,
            inner.engine,
            f"{inner.reason}; case-insensitive: ASCII values only, RE2 for others",
        )
        self._inner, self._fallback, self._lower = inner, fallback, lower

    def __call__(self, value: str) -> bool:
        if value.isascii():
            return self._inner(value.lower() if self._lower else value)
        return self._fallback(value)


def _re2_matcher(pattern: str, reason: str) -> FullMatcher:
    return _Re2(pattern, reason) if _use_native else _Re2Wrapper(pattern, reason)


# --- compiling -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def compile_full_match(pattern: str) -> FullMatcher:
    """Compile an RE2 ``pattern`` for full-string matching on the fastest engine that is exact and safe.

    Raises :class:`InvalidRegexError` (a ``ValueError``) when :func:`validate_re2` refuses the pattern.
    Results are cached: a config reload recompiles the same patterns.

    >>> m = compile_full_match("/api/.*")
    >>> m("/api/v1"), m("/apix"), m.engine
    (True, False, <Engine.PREFIX: 'prefix'>)
    >>> compile_full_match("(a+)+$").engine
    <Engine.RE2: 're2'>
    """
    problem = validate_re2(pattern)
    if problem is not None:
        raise InvalidRegexError(problem)
    try:
        parser = _Parser(pattern)
        tree = _strip_edge_anchors(parser.parse(), left=True, right=True)
    except _Unsupported as e:
        return _re2_matcher(pattern, f"uses {e}, which is left to RE2")
    # Case-insensitive patterns are handled here for ASCII values only; RE2 answers for the others.
    fallback = _re2_matcher(pattern, "RE2 for non-ASCII values") if parser.folds else None
    fast = _fast_path(pattern, tree, parser.folds)
    if fast is not None:
        return _AsciiOnly(fast, fallback, lower=True) if fallback is not None else fast
    safety = _Safety()
    try:
        safety.check(tree, _END)
    except _Unsafe as unsafe:
        # (Its own name: mypyc gives one name one type for the whole function.)
        snippet = pattern[unsafe.span[0] : unsafe.span[1]]
        return _re2_matcher(pattern, f"backtracking could be slow: {unsafe.args[0]} at {snippet!r}")
    try:
        compiled = re.compile(_emit(tree))
    except (re.error, RecursionError, OverflowError) as e:  # pragma: no cover - defensive
        return _re2_matcher(pattern, f"Python's re refused the translation ({e})")
    reason = "every choice is decided by the next character: linear-time"
    if safety.ambiguity > 1:
        reason = (
            "every choice is decided by the next character but for overlapping alternatives outside"
            f" repetition (at most {safety.ambiguity} passes): linear-time"
        )
    matcher = _PythonRe(pattern, reason, compiled, Engine.PYTHON_RE)
    # The translation spells case-insensitive letters as [aA] pairs, so the value is not lower-cased.
    return _AsciiOnly(matcher, fallback, lower=False) if fallback is not None else matcher


#: Largest set of strings the literal-set engine holds.
_SET_LIMIT = 64


def _fast_path(pattern: str, tree: _Node, lower: bool) -> FullMatcher | None:
    """The literal, literal-set, prefix, suffix or glob matcher for ``tree``, if it has one of those shapes.

    With ``lower``, the pattern folds case: pieces are lower-cased and the caller lower-cases ASCII values.
    """
    strings = _expand(tree, lower)
    if strings is not None:
        if len(strings) == 1:
            (literal,) = strings
            return _Literal(pattern, "matches exactly one string", literal)
        return _LiteralSet(pattern, f"matches one of {len(strings)} strings", frozenset(strings))
    affix = _affix(pattern, tree, lower)
    if affix is not None:
        return affix
    glob = _glob(tree, lower)
    if glob is None:
        return None
    pieces, gaps, dotall = glob
    if not dotall and any("\n" in p for p in pieces):
        # With newlines in the pieces, leftmost placement is no longer always right: leave it to the check.
        return None
    # Each middle piece is found at its leftmost occurrence and the atomic group commits to it: leftmost
    # placement leaves the most room for the rest, so nothing is lost, and nothing is ever retried.
    parts = [re.escape(pieces[0])]
    parts += [
        f"(?>.{{{gap},}}?{re.escape(piece)})" for gap, piece in zip(gaps[:-1], pieces[1:-1], strict=True)
    ]
    parts.append(f".{{{gaps[-1]},}}{re.escape(pieces[-1])}")
    compiled = re.compile("".join(parts), re.DOTALL if dotall else 0)
    return _PythonRe(pattern, "literal pieces joined by .* or .+ (leftmost placement)", compiled, Engine.GLOB)


def _affix(pattern: str, tree: _Node, lower: bool) -> FullMatcher | None:
    """A prefix or suffix matcher when ``tree`` is a few fixed strings and ``.*`` (or ``.+``, ``.{n,}`` after
    a single string) on one side, the strings holding no newline."""
    items = _flatten(tree)
    if not items:
        return None
    for gap, rest, make in ((items[-1], items[:-1], _Prefix), (items[0], items[1:], _Suffix)):
        if not _is_gap(gap):
            continue
        assert isinstance(gap, _Rep)
        strings = _expand(_Cat(tree.span, tuple(rest)), lower)
        if strings is None or any("\n" in s for s in strings) or (gap.lo and len(strings) > 1):
            continue
        dotall = _chars_of(gap).ranges == _ALL
        side = "prefix" if make is _Prefix else "suffix"
        if strings == {""}:
            what = "any characters" if dotall else "any characters but a newline"
        elif len(strings) == 1:
            what = f"a literal {side}"
        else:
            what = f"one of {len(strings)} literal {side}es"
        min_len = min(len(s) for s in strings) + gap.lo
        return make(pattern, what, tuple(sorted(strings)), min_len, dotall)
    return None


def _flatten(node: _Node) -> list[_Node]:
    if isinstance(node, _Cat):
        return [leaf for item in node.items for leaf in _flatten(item)]
    return [] if isinstance(node, _Empty) else [node]


def _is_gap(node: _Node) -> bool:
    """Whether ``node`` is ``.*``, ``.+`` or ``.{n,}``."""
    return isinstance(node, _Rep) and node.hi is None and isinstance(node.body, _Chars) and node.body.dot


def _chars_of(node: _Node) -> _Chars:
    assert isinstance(node, _Rep) and isinstance(node.body, _Chars)
    return node.body


# --- the parse tree ---------------------------------------------------------------------------------------

_MAX_CP = 0x10FFFF
_Ranges = tuple[tuple[int, int], ...]
_ALL: _Ranges = ((0, _MAX_CP),)
_NOT_NEWLINE: _Ranges = ((0, 9), (11, _MAX_CP))


@dataclass(frozen=True, slots=True)
class _Node:
    span: tuple[int, int]  # where in the pattern, for explanations


@dataclass(frozen=True, slots=True)
class _Chars(_Node):
    """One character from ``ranges``; ``literal`` is the character as written for a plain one, ``fold`` says
    it was written under ``(?i)`` and ``dot`` that it is ``.``."""

    ranges: _Ranges
    literal: str | None = None
    fold: bool = False
    dot: bool = False


@dataclass(frozen=True, slots=True)
class _Assert(_Node):
    at_start: bool  # ^ or \A; otherwise $ or \z (RE2 without (?m): end of text only)


@dataclass(frozen=True, slots=True)
class _Empty(_Node):
    pass


@dataclass(frozen=True, slots=True)
class _Cat(_Node):
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt(_Node):
    branches: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Rep(_Node):
    body: _Node
    lo: int
    hi: int | None  # None: unbounded


def _normalise(pairs: Iterable[tuple[int, int]]) -> _Ranges:
    merged: list[list[int]] = []
    for lo, hi in sorted(pairs):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def _negate(ranges: _Ranges) -> _Ranges:
    out: list[tuple[int, int]] = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CP:
        out.append((nxt, _MAX_CP))
    return tuple(out)


def _overlap(a: _Ranges, b: _Ranges) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def _size(ranges: _Ranges) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


def _fold_ascii(ranges: _Ranges) -> _Ranges:
    """``ranges`` plus the other case of every ASCII letter in it."""
    extra: list[tuple[int, int]] = []
    for lo, hi in ranges:
        for a, z, delta in ((0x41, 0x5A, 0x20), (0x61, 0x7A, -0x20)):
            if lo <= z and hi >= a:
                extra.append((max(lo, a) + delta, min(hi, z) + delta))
    return _normalise((*ranges, *extra))


# RE2's Perl classes are ASCII-only; \s is [\t\n\f\r ] (no \v).
_PERL_CLASSES: dict[str, _Ranges] = {
    "d": ((0x30, 0x39),),
    "s": ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)),
    "w": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
}
_ASCII_LETTERS: _Ranges = ((0x41, 0x5A), (0x61, 0x7A))
_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "t": 0x09, "n": 0x0A, "r": 0x0D, "v": 0x0B}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"([imsU]*)(?:-([imsU]*))?([:)])")
_OCTAL = "01234567"
_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_DEPTH = 50  # deeper group nesting goes to RE2 instead of risking Python's recursion limit


class _Unsupported(Exception):
    """The pattern uses syntax this module does not translate (the message names it); RE2 runs it."""


class _Parser:
    """A recursive-descent parser for the subset of RE2 syntax this module translates.

    It only sees patterns RE2 accepted, so it does not diagnose errors: anything unexpected raises
    :class:`_Unsupported`. ``folds`` tells, after parsing, whether some character was read under ``(?i)``.
    """

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.depth = 0
        self.fold = self.dotall = self.multiline = False
        self.folds = False

    def parse(self) -> _Node:
        node = self._alternation()
        if self.i != len(self.p):  # pragma: no cover - RE2 refuses an unbalanced ')'
            raise _Unsupported(f"an unexpected {self.p[self.i]!r}")
        return node

    def _alternation(self) -> _Node:
        start = self.i
        branches = [self._concatenation()]
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            branches.append(self._concatenation())
        return branches[0] if len(branches) == 1 else _Alt((start, self.i), tuple(branches))

    def _concatenation(self) -> _Node:
        start = self.i
        items: list[_Node] = []
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            atom = self._atom()
            if atom is not None:
                items.append(self._repetition(atom))
        if not items:
            return _Empty((start, start))
        return items[0] if len(items) == 1 else _Cat((start, self.i), tuple(items))

    def _repetition(self, atom: _Node) -> _Node:
        p, i = self.p, self.i
        if i >= len(p):
            return atom
        hi: int | None
        if p[i] == "*":
            lo, hi, i = 0, None, i + 1
        elif p[i] == "+":
            lo, hi, i = 1, None, i + 1
        elif p[i] == "?":
            lo, hi, i = 0, 1, i + 1
        elif p[i] == "{" and (m := _REPEAT.match(p, i)):
            lo = int(m[1])
            hi = lo if m[2] is None else (int(m[3]) if m[3] else None)
            i = m.end()
        else:
            return atom
        if i < len(p) and p[i] == "?":  # lazy: the same yes/no answer
            i += 1
        self.i = i
        if i < len(p) and (p[i] in "*+?" or (p[i] == "{" and _REPEAT.match(p, i))):
            raise _Unsupported("stacked repetition")  # pragma: no cover - RE2 refuses it
        return _Rep((atom.span[0], i), atom, lo, hi)

    def _atom(self) -> _Node | None:
        p, i = self.p, self.i
        c = p[i]
        if c == "(":
            return self._group()
        if c == "[":
            return self._class()
        if c == ".":
            self.i += 1
            return _Chars((i, i + 1), _ALL if self.dotall else _NOT_NEWLINE, dot=True)
        if c in "^$":
            if self.multiline:
                raise _Unsupported("multi-line anchors")
            self.i += 1
            return _Assert((i, i + 1), at_start=c == "^")
        if c == "\\":
            return self._escape()
        if c in "*+?" or (c == "{" and _REPEAT.match(p, i)):  # pragma: no cover - RE2 refuses these
            raise _Unsupported("repetition of nothing")
        self.i += 1
        return self._char(c, (i, i + 1))

    def _char(self, ch: str, span: tuple[int, int]) -> _Chars:
        code = ord(ch)
        ranges: _Ranges = ((code, code),)
        if self.fold:
            if not ch.isascii():
                raise _Unsupported("case-insensitive non-ASCII characters")
            if ch.isalpha():
                ranges = _fold_ascii(ranges)
                self.folds = True
                return _Chars(span, ranges, literal=ch, fold=True)
        return _Chars(span, ranges, literal=ch)

    def _group(self) -> _Node | None:
        p, start = self.p, self.i
        saved = (self.fold, self.dotall, self.multiline)
        if p.startswith("(?", start):
            j = start + 2
            if p.startswith("P<", j) or p.startswith("<", j):
                end = p.find(">", j)
                if end < 0:  # pragma: no cover - RE2 refuses it
                    raise _Unsupported("an unterminated group name")
                self.i = end + 1
            else:
                m = _FLAGS.match(p, j)
                if m is None:  # pragma: no cover - RE2 refuses other (? forms
                    raise _Unsupported(f"the group syntax {p[start : start + 3]!r}")
                for flags, value in ((m[1], True), (m[2] or "", False)):
                    for flag in flags:
                        if flag == "i":
                            self.fold = value
                        elif flag == "s":
                            self.dotall = value
                        elif flag == "m":
                            self.multiline = value
                        # U swaps greedy and lazy: the same yes/no answer.
                self.i = m.end()
                if m[3] == ")":
                    return None  # (?i) alone: in force until the enclosing group closes
        else:
            self.i = start + 1
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Unsupported("deeply nested groups")
        node = self._alternation()
        self.depth -= 1
        if self.i >= len(p) or p[self.i] != ")":  # pragma: no cover - RE2 refuses it
            raise _Unsupported("an unbalanced '('")
        self.i += 1
        self.fold, self.dotall, self.multiline = saved
        return replace(node, span=(start, self.i))

    def _escape(self) -> _Node:
        p, start = self.p, self.i
        c = p[start + 1] if start + 1 < len(p) else ""
        if c in ("A", "z"):
            self.i += 2
            return _Assert((start, self.i), at_start=c == "A")
        if c and c in "dswDSW":
            self.i += 2
            return self._class_node(self._perl_class(c), (start, self.i))
        code = self._escaped_char()
        return self._char(chr(code), (start, self.i))

    def _perl_class(self, letter: str) -> _Ranges:
        if self.fold and letter.isupper():
            raise _Unsupported(f"\\{letter} under (?i)")
        ranges = _PERL_CLASSES[letter.lower()]
        return _negate(ranges) if letter.isupper() else ranges

    def _escaped_char(self) -> int:
        """The code point of the escape at ``self.i`` (a backslash), moving past it."""
        p, i = self.p, self.i
        c = p[i + 1] if i + 1 < len(p) else ""
        if c in _SIMPLE_ESCAPES:
            self.i = i + 2
            return _SIMPLE_ESCAPES[c]
        if c == "x":
            if p.startswith("{", i + 2):
                end = p.find("}", i + 3)
                digits = p[i + 3 : end] if end > 0 else ""
                self.i = end + 1
            else:
                digits = p[i + 2 : i + 4]
                self.i = i + 4
            if not digits or len(digits) > 8 or not _HEX.issuperset(digits):  # pragma: no cover - RE2 refuses
                raise _Unsupported("a malformed \\x escape")
            return int(digits, 16)
        if c and c in _OCTAL:
            # RE2: \0 and \1..\7 followed by another octal digit start an octal escape of up to 3 digits;
            # a lone \1..\7 would be a backreference, which RE2 refuses.
            j = i + 2
            while j < len(p) and j < i + 4 and p[j] in _OCTAL:
                j += 1
            if c != "0" and j == i + 2:  # pragma: no cover - RE2 refuses backreferences
                raise _Unsupported("a backreference")
            self.i = j
            return int(p[i + 1 : j], 8)
        if c and c.isascii() and not c.isalnum():
            self.i = i + 2
            return ord(c)
        raise _Unsupported(f"\\{c}")

    def _class(self) -> _Chars:
        p, start = self.p, self.i
        self.i += 1
        negated = self.i < len(p) and p[self.i] == "^"
        if negated:
            self.i += 1
        pairs: list[tuple[int, int]] = []
        first = True
        while True:
            if self.i >= len(p):  # pragma: no cover - RE2 refuses it
                raise _Unsupported("an unterminated class")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[":
                raise _Unsupported("POSIX classes")  # [[:alpha:]], [[.a.]], [[=a=]]
            if c == "\\" and self.i + 1 < len(p) and p[self.i + 1] in "dswDSW":
                pairs.extend(self._perl_class(p[self.i + 1]))
                self.i += 2
                continue
            lo = self._class_char()
            if self.i + 1 < len(p) and p[self.i] == "-" and p[self.i + 1] != "]":
                self.i += 1
                hi = self._class_char()
                pairs.append((lo, hi))
            else:
                pairs.append((lo, lo))
        ranges = _normalise(pairs)
        return self._class_node(_negate(ranges) if negated else ranges, (start, self.i), negated=negated)

    def _class_char(self) -> int:
        c = self.p[self.i]
        if c == "\\":
            return self._escaped_char()
        self.i += 1
        return ord(c)

    def _class_node(self, ranges: _Ranges, span: tuple[int, int], negated: bool = False) -> _Chars:
        if self.fold:
            # RE2 folds before negating; with ASCII-only members and ASCII values, folding the members
            # over ASCII letters is exact. Non-ASCII members would need Unicode folding: left to RE2.
            members = _negate(ranges) if negated else ranges
            if members and members[-1][1] > 0x7F:
                raise _Unsupported("case-insensitive non-ASCII classes")
            members = _fold_ascii(members)
            ranges = _negate(members) if negated else members
            self.folds = True
            return _Chars(span, ranges, fold=True)
        return _Chars(span, ranges)


def _strip_edge_anchors(node: _Node, *, left: bool, right: bool) -> _Node:
    """``node`` without the ``^``/``$`` anchors at its outer edges, which always hold in a full match."""
    if isinstance(node, _Assert):
        return _Empty(node.span) if (left if node.at_start else right) else node
    if isinstance(node, _Alt):
        return replace(
            node, branches=tuple(_strip_edge_anchors(b, left=left, right=right) for b in node.branches)
        )
    if isinstance(node, _Cat):
        items = list(node.items)
        if left:
            for k, item in enumerate(items):
                items[k] = _strip_edge_anchors(item, left=True, right=False)
                if not isinstance(items[k], _Empty):
                    break
        if right:
            for k in range(len(items) - 1, -1, -1):
                items[k] = _strip_edge_anchors(items[k], left=False, right=True)
                if not isinstance(items[k], _Empty):
                    break
        kept = [item for item in items if not isinstance(item, _Empty)]
        if not kept:
            return _Empty(node.span)
        return kept[0] if len(kept) == 1 else _Cat(node.span, tuple(kept))
    return node


# --- literal shapes ---------------------------------------------------------------------------------------


def _char_strings(node: _Chars, lower: bool) -> set[str] | None:
    """The characters ``node`` matches as strings (lower-cased when ``lower``), if few enough."""
    if lower:
        if node.literal is not None:
            if node.fold:
                return {node.literal.lower()}
            # An unfolded letter cannot be compared against a lower-cased value.
            return None if node.literal.isascii() and node.literal.isalpha() else {node.literal}
        if not node.fold and _overlap(node.ranges, _ASCII_LETTERS):
            return None  # an unfolded class with letters cannot be tested against a lower-cased value
    if _size(node.ranges) > _SET_LIMIT:
        return None
    chars = {chr(c) for lo, hi in node.ranges for c in range(lo, hi + 1)}
    return {c.lower() for c in chars} if lower else chars


def _expand(node: _Node, lower: bool) -> set[str] | None:
    """Every string ``node`` matches, if there are at most ``_SET_LIMIT`` of them."""
    if isinstance(node, _Chars):
        return _char_strings(node, lower)
    if isinstance(node, _Empty):
        return {""}
    if isinstance(node, _Cat):
        acc: set[str] | None = {""}
        run: list[str] = []  # consecutive single strings, joined once (a long literal stays linear)
        for item in node.items:
            strings = _expand(item, lower)
            if strings is None:
                return None
            if len(strings) == 1:
                run.extend(strings)
                continue
            acc = _product(_product(acc, {"".join(run)}), strings)
            run = []
            if acc is None:
                return None
        return _product(acc, {"".join(run)})
    if isinstance(node, _Alt):
        union: set[str] = set()
        for branch in node.branches:
            strings = _expand(branch, lower)
            if strings is None:
                return None
            union |= strings
            if len(union) > _SET_LIMIT:
                return None
        return union
    if isinstance(node, _Rep) and node.hi is not None:
        body = _expand(node.body, lower)
        if body is None:
            return None
        power: set[str] | None = {""}
        for _ in range(node.lo):
            power = _product(power, body)
        result = set(power) if power is not None else None
        for _ in range(node.lo, node.hi):
            if result is None or power is None:
                return None
            power = _product(power, body | {""})
            if power is None:
                return None
            result = power
        return result
    return None  # anchors left inside the pattern, unbounded repetition


def _product(a: set[str] | None, b: set[str] | None) -> set[str] | None:
    if a is None or b is None or len(a) * len(b) > _SET_LIMIT:
        return None
    return {x + y for x in a for y in b}


def _glob(node: _Node, lower: bool) -> tuple[list[str], list[int], bool] | None:
    """(pieces, gaps, dotall) when ``node`` is literal pieces joined by ``.*``/``.+`` (at least one gap):
    gap k, of at least ``gaps[k]`` characters, lies between pieces k and k+1."""
    pieces: list[str] = [""]
    gaps: list[int] = []
    dotall: bool | None = None
    just_gapped = False
    for item in _flatten(node):
        if isinstance(item, _Chars) and item.literal is not None:
            strings = _char_strings(item, lower)
            if strings is None or len(strings) != 1:
                return None
            pieces[-1] += strings.pop()
            just_gapped = False
        elif _is_gap(item):
            assert isinstance(item, _Rep)
            this_dotall = _chars_of(item).ranges == _ALL
            if dotall is not None and dotall != this_dotall:
                return None
            dotall = this_dotall
            if just_gapped:
                gaps[-1] += item.lo
            else:
                gaps.append(item.lo)
                pieces.append("")
            just_gapped = True
        else:
            return None
    if dotall is None:
        return None
    return pieces, gaps, dotall


# --- the backtracking-safety check ------------------------------------------------------------------------


class _Unsafe(Exception):
    """A choice point that the next character does not decide (message and span say which)."""

    def __init__(self, message: str, span: tuple[int, int]) -> None:
        super().__init__(message)
        self.span = span


@dataclass(frozen=True, slots=True)
class _First:
    """Characters that can come next, and whether the end of the value can."""

    chars: _Ranges
    end: bool

    def __or__(self, other: _First) -> _First:
        return _First(_normalise((*self.chars, *other.chars)), self.end or other.end)

    def clashes(self, other: _First) -> bool:
        return (self.end and other.end) or _overlap(self.chars, other.chars)


_NOTHING = _First((), False)
_END = _First((), True)


def _nullable(node: _Node) -> bool:
    if isinstance(node, _Chars):
        return False
    if isinstance(node, _Assert):
        return node.at_start  # $ is modelled as "consuming" the end of the value
    if isinstance(node, _Cat):
        return all(_nullable(item) for item in node.items)
    if isinstance(node, _Alt):
        return any(_nullable(branch) for branch in node.branches)
    if isinstance(node, _Rep):
        return node.lo == 0 or _nullable(node.body)
    return True


def _first(node: _Node) -> _First:
    if isinstance(node, _Chars):
        return _First(node.ranges, False)
    if isinstance(node, _Assert):
        return _NOTHING if node.at_start else _END
    if isinstance(node, _Cat):
        acc = _NOTHING
        for item in node.items:
            acc = acc | _first(item)
            if not _nullable(item):
                break
        return acc
    if isinstance(node, _Alt):
        acc = _NOTHING
        for branch in node.branches:
            acc = acc | _first(branch)
        return acc
    if isinstance(node, _Rep):
        return _first(node.body) if node.hi != 0 else _NOTHING
    return _NOTHING


#: Most paths that overlapping alternations outside repetition may multiply the search by (see _Safety).
_AMBIGUITY_LIMIT = 16


class _Safety:
    """The backtracking-safety check. ``check`` raises :class:`_Unsafe` unless every choice point in the
    pattern is decided by the next character, with one bounded exception: an alternation that is not inside a
    repetition may have overlapping branches, which at worst runs the rest of the search once per branch;
    ``ambiguity``, the product of those alternations' widths, must stay within ``_AMBIGUITY_LIMIT``."""

    def __init__(self) -> None:
        self.ambiguity = 1

    def check(self, node: _Node, follow: _First, repeated: bool = False) -> None:
        """Check ``node``, after which ``follow`` can come; ``repeated`` when it runs once per iteration of
        an enclosing repetition."""
        if isinstance(node, _Chars):
            if not node.ranges:
                raise _Unsafe("a class that matches nothing", node.span)
        elif isinstance(node, _Cat):
            after = follow
            for item in reversed(node.items):
                self.check(item, after, repeated)
                after = _first(item) | after if _nullable(item) else _first(item)
        elif isinstance(node, _Alt):
            self._alternation(node, follow, repeated)
        elif isinstance(node, _Rep):
            body_first = _first(node.body)
            if node.hi is None or node.hi > node.lo:
                if _nullable(node.body):
                    raise _Unsafe("a repeated part can match the empty string", node.span)
                if body_first.clashes(follow):
                    raise _Unsafe("a repetition can overlap what follows it", node.span)
            many = node.hi is None or node.hi > 1
            self.check(node.body, body_first | follow if many else follow, repeated or many)

    def _alternation(self, node: _Alt, follow: _First, repeated: bool) -> None:
        seen = _NOTHING
        overlap = None
        for branch in node.branches:
            starts = _first(branch)
            if _nullable(branch):
                starts = starts | follow
            if starts.clashes(seen):
                overlap = "two branches can start with the same character (or both match the empty string)"
            seen = seen | starts
            self.check(branch, follow, repeated)
        if overlap is None:
            return
        if repeated:
            raise _Unsafe(f"{overlap}, inside a repetition", node.span)
        self.ambiguity *= len(node.branches)
        if self.ambiguity > _AMBIGUITY_LIMIT:
            raise _Unsafe(f"{overlap}, in too many places", node.span)


# --- translation to Python's re ---------------------------------------------------------------------------


def _emit(node: _Node) -> str:
    """A Python pattern with the same meaning as ``node`` under ``re.fullmatch`` (no flags)."""
    if isinstance(node, _Chars):
        return _emit_chars(node.ranges)
    if isinstance(node, _Assert):
        return r"\A" if node.at_start else r"\Z"
    if isinstance(node, _Cat):
        return "".join(f"(?:{_emit(item)})" if isinstance(item, _Alt) else _emit(item) for item in node.items)
    if isinstance(node, _Alt):
        return "|".join(_emit(branch) for branch in node.branches)
    if isinstance(node, _Rep):
        if isinstance(node.body, _Empty):
            return ""
        body = _emit(node.body)
        if not isinstance(node.body, _Chars):
            body = f"(?:{body})"
        lo, hi = node.lo, node.hi
        if hi is None:
            quantifier = "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
        elif lo == hi:
            quantifier = f"{{{lo}}}"
        else:
            quantifier = "?" if (lo, hi) == (0, 1) else f"{{{lo},{hi}}}"
        return body + quantifier
    return ""


def _emit_chars(ranges: _Ranges) -> str:
    if ranges == _ALL:
        return "(?s:.)"
    if ranges == _NOT_NEWLINE:
        return "."
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _emit_code(ranges[0][0])
    complement = _negate(ranges)
    if len(complement) < len(ranges) or ranges[-1][1] == _MAX_CP:
        return "[^" + _emit_ranges(complement) + "]"
    return "[" + _emit_ranges(ranges) + "]"


def _emit_ranges(ranges: _Ranges) -> str:
    return "".join(_emit_code(lo) if lo == hi else f"{_emit_code(lo)}-{_emit_code(hi)}" for lo, hi in ranges)


def _emit_code(code: int) -> str:
    ch = chr(code)
    if ch.isascii() and (ch.isalnum() or ch == "_"):
        return ch
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
