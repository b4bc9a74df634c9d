"""Istio's validation rules, one module per family of kinds, all reporting through one :class:`Reporter`.

A check is a function ``(resource, reporter, context) -> None`` registered for one or more resource classes with
:func:`checks`. It reports problems by field path, relative to the resource (``spec.http[0].timeout``); the
loader turns paths into file lines. Checks never raise on bad input: they report and carry on, so that one run
shows every problem.

Example of a new rule::

    @checks(VirtualService)
    def _no_empty_hosts(vs: VirtualService, r: Reporter, ctx: Context) -> None:
        if not vs.spec.hosts:
            r.error("spec.hosts", "at least one host is required")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .._schema import Located
from ..resources import Resource

__all__ = ["Check", "Context", "Reporter", "checks", "validate"]

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True, slots=True)
class Context:
    """What a check may need beyond the resource: the namespace it takes effect in."""

    namespace: str = "default"


class Reporter:
    """Collects findings; ``at(prefix)`` gives a reporter whose paths are relative to ``prefix``."""

    __slots__ = ("findings", "prefix")

    def __init__(self, findings: list[Located] | None = None, prefix: str = "") -> None:
        self.findings: list[Located] = [] if findings is None else findings
        self.prefix = prefix

    def _join(self, path: str) -> str:
        if not self.prefix:
            return path
        if not path:
            return self.prefix
        return f"{self.prefix}{path}" if path.startswith("[") else f"{self.prefix}.{path}"

    def error(self, path: str, message: str) -> None:
        """Report an error at ``path`` (relative to this reporter's prefix)."""
        self.findings.append(Located(self._join(path), None, message))

    def warn(self, path: str, message: str) -> None:
        """Report a warning at ``path``."""
        self.findings.append(Located(self._join(path), None, message, warning=True))

    def at(self, path: str) -> Reporter:
        """A reporter for the sub-tree at ``path``, sharing this one's findings."""
        return Reporter(self.findings, self._join(path))

    @property
    def has_errors(self) -> bool:
        """True when any error (not warning) has been reported so far."""
        return any(not f.warning for f in self.findings)


Check = Callable[[Any, Reporter, Context], None]
_CHECKS: dict[type[Resource], list[Check]] = {}


def checks(*kinds: type[Resource]) -> Callable[[Callable[[R, Reporter, Context], None]], Check]:
    """Register the decorated function as a check for each of ``kinds``."""

    def register(fn: Callable[[R, Reporter, Context], None]) -> Check:
        for kind in kinds:
            _CHECKS.setdefault(kind, []).append(fn)
        return fn

    return register


_MODULES = (
    "common",
    "virtual_service",
    "destination_rule",
    "service_entry",
    "gateway",
    "security",
    "extensions",
)
_loaded = False


def _load_modules() -> None:
    global _loaded
    if not _loaded:
        for name in _MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _loaded = True


def validate(resource: Resource, context: Context | None = None) -> list[Located]:
    """Run every registered check on ``resource``; returns the findings (errors and warnings)."""
    _load_modules()
    reporter = Reporter()
    ctx = context or Context()
    for check in _CHECKS.get(type(resource), ()):
        check(resource, reporter, ctx)
    return reporter.findings
