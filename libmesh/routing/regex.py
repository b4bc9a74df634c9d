"""Full-string regex matching for routes: RE2 semantics, with string-operation fast paths.

Istio's regexes are RE2 and must match the whole value. Patterns that are really a literal, a prefix
(``/api/.*``) or a suffix (``.*\\.css``) compile to ``==``/``startswith``/``endswith``; everything else runs on
google-re2, which is linear-time on any input, so a hostile header cannot stall a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import re2

__all__ = ["FullMatcher", "compile_full_match", "validate_re2"]

MAX_LENGTH = 1024
_META = set(".^$*+?{}[]\\|()")


@dataclass(frozen=True, slots=True)
class FullMatcher:
    """A compiled full-string matcher; ``engine`` says which implementation was chosen."""

    pattern: str
    engine: str
    test: Callable[[str], bool]

    def __call__(self, value: str) -> bool:
        return self.test(value)


def validate_re2(pattern: str) -> str | None:
    """The RE2 error for ``pattern`` (or that it is over 1024 characters), ``None`` when it is valid."""
    if len(pattern) > MAX_LENGTH:
        return f"regex is too large, max length allowed is {MAX_LENGTH}"
    try:
        re2.compile(pattern)
    except re2.error as e:
        return str(e)
    return None


def _literal(text: str) -> str | None:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and not text[i + 1].isalnum():
            out.append(text[i + 1])
            i += 2
            continue
        if c in _META:
            return None
        out.append(c)
        i += 1
    return "".join(out)


def compile_full_match(pattern: str) -> FullMatcher:
    """Compile ``pattern`` for full-string matching, choosing the cheapest exact implementation.

    >>> m = compile_full_match("/api/.*")
    >>> m("/api/v1"), m("/apx"), m.engine
    (True, False, 'prefix')
    """
    lit = _literal(pattern)
    if lit is not None:
        return FullMatcher(pattern, "literal", lit.__eq__)
    if pattern.endswith(".*") and "\n" not in pattern:
        head = _literal(pattern[:-2])
        if head is not None:
            # RE2's . does not match \\n; a value containing one falls back to the full engine.
            compiled = re2.compile(pattern)
            return FullMatcher(
                pattern,
                "prefix",
                lambda v: v.startswith(head) and ("\n" not in v or compiled.fullmatch(v) is not None),
            )
    if pattern.startswith(".*"):
        tail = _literal(pattern[2:])
        if tail is not None:
            compiled = re2.compile(pattern)
            return FullMatcher(
                pattern,
                "suffix",
                lambda v: v.endswith(tail) and ("\n" not in v or compiled.fullmatch(v) is not None),
            )
    compiled = re2.compile(pattern)
    return FullMatcher(pattern, "re2", lambda v: compiled.fullmatch(v) is not None)
