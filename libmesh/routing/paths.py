"""Request path normalization, as Istio's sidecars do it before routing (MeshConfig ``pathNormalization``).

Istio normalizes the path once, before anything reads it: outbound routing matches the normalized path,
and it is the path sent upstream. The modes are Istio's ``ProxyPathNormalization.NormalizationType``:

* ``NONE``: the path as it came;
* ``BASE`` (the default): percent-encoded unreserved characters decoded (``%61`` is ``a``, ``%2e`` is
  ``.``, once: ``%2561`` stays ``%61``), backslashes made slashes, and ``.``/``..`` segments resolved by
  RFC 3986 (``/a/../b`` is ``/b``);
* ``MERGE_SLASHES``: ``BASE``, then runs of slashes merged (``/a//b`` is ``/a/b``);
* ``DECODE_AND_MERGE_SLASHES``: ``%2F`` and ``%5C`` decoded too (to ``/`` and ``\\``, then ``/``) before the
  rest, so ``/a%2fb`` is ``/a/b``.

The query string is never touched::

    >>> normalize_path("/a/./b/../c%2e%2E/%41?x=/../", "BASE")
    '/a/c../A?x=/../'
    >>> normalize_path("/a//b%2Fc", "DECODE_AND_MERGE_SLASHES")
    '/a/b/c'

A path carrying ``%00`` is refused by Istio (400); :func:`is_rejected` tells.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MODES", "is_rejected", "normalize_path"]

MODES: Final = ("NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")

# Percent-encodings Istio's BASE mode decodes: the unreserved characters of RFC 3986.
_UNRESERVED: Final = frozenset(
    [0x2D, 0x2E, 0x5F, 0x7E, *range(0x30, 0x3A), *range(0x41, 0x5B), *range(0x61, 0x7B)]
)
_SLASHES: Final = frozenset([0x2F, 0x5C])
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_SLASH_RUN: Final = re.compile(r"/{2,}")


def _decode(path: str, slashes: bool) -> str:
    def replace(m: re.Match[str]) -> str:
        code = int(m.group(1), 16)
        if code in _UNRESERVED or (slashes and code in _SLASHES):
            return chr(code)
        return m.group(0)

    return _ESCAPE.sub(replace, path)


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 section 5.2.4, on whole segments.
    out: list[str] = []
    segments = path.split("/")
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == ".":
            if last:
                out.append("")
        elif segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(segment)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def _changes(text: str, merge: bool) -> bool:
    """Whether normalizing may change ``text``: it has escapes, backslashes, dot segments or (when
    merging) double slashes."""
    return "%" in text or "\\" in text or "/." in text or (merge and "//" in text)


def normalize_path(target: str, mode: str) -> str:
    """``target`` (a path with its query) normalized as Istio's ``mode`` does it; the query is kept as is.
    Returns ``target`` itself when nothing changes."""
    if mode == "NONE":
        return target
    merge = mode != "BASE"
    # Most paths need nothing. The whole target is tested first: when its query has nothing to change either
    # (most have none), the path is not split off at all.
    if not _changes(target, merge):
        return target
    path, sep, query = target.partition("?")
    if not _changes(path, merge):
        return target
    if "%" in path:
        path = _decode(path, mode == "DECODE_AND_MERGE_SLASHES")
    path = path.replace("\\", "/")
    if "/." in path:
        path = _remove_dot_segments(path)
    if merge:
        path = _SLASH_RUN.sub("/", path)
    normalized = path + sep + query
    return target if normalized == target else normalized


def is_rejected(target: str) -> bool:
    """Whether Istio refuses the request outright (400) for its path: it carries an encoded NUL (``%00``)."""
    path = target.partition("?")[0]
    return "%00" in path
