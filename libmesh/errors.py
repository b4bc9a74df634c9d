"""Errors and findings that libmesh reports about configuration.

Every finding carries where it came from (file, line), which resource it is about (kind, namespace/name) and the
field path inside that resource, so a user can go straight to the offending line::

    reviews.yaml:12: VirtualService default/reviews: spec.http[0].route[1].weight: weight must be ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CallerDeadlineExceeded", "ConfigError", "ConfigIssue", "LibmeshError", "Severity"]


class LibmeshError(Exception):
    """Base class of every exception libmesh raises on purpose."""


class Severity(StrEnum):
    """How serious a :class:`ConfigIssue` is: errors reject the config, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One finding about one field of one resource.

    ``path`` is the field path in the resource as written in YAML (``spec.http[0].timeout``); ``line`` is
    the 1-based line of that field in ``file`` (or ``None`` for objects built in Python).
    """

    severity: Severity
    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None

    @property
    def is_error(self) -> bool:
        """True for an error, False for a warning."""
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.line}" if self.line is not None else self.file)
        if self.kind:
            who = f"{self.namespace}/{self.name or '(unnamed)'}" if self.namespace else (self.name or "")
            parts.append(f"{self.kind} {who}".rstrip())
        if self.path:
            parts.append(self.path)
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return prefix + ": ".join([*parts, self.message])


class ConfigError(LibmeshError, ValueError):
    """Configuration was rejected. ``issues`` holds every finding, errors and warnings alike.

    The message lists all errors, one per line, each with its file, line and field::

        try:
            load_paths(["mesh/"])
        except ConfigError as e:
            for issue in e.errors:
                print(issue)
    """

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.errors) or "invalid configuration")

    @property
    def errors(self) -> tuple[ConfigIssue, ...]:
        """Only the errors (no warnings)."""
        return tuple(i for i in self.issues if i.is_error)

    @property
    def warnings(self) -> tuple[ConfigIssue, ...]:
        """Only the warnings."""
        return tuple(i for i in self.issues if not i.is_error)


class CallerDeadlineExceeded(LibmeshError, TimeoutError):
    """The caller's own deadline (its client timeout) passed before the mesh had a response for it: what a
    client library raises when its sidecar has not answered in time. The policy engine raises it instead of
    waiting out an injected delay, a retry back-off or an attempt the caller no longer waits for; adapters
    turn it into their framework's timeout error (``httpx.ReadTimeout``, gRPC ``DEADLINE_EXCEEDED``)::

        try:
            ...
        except CallerDeadlineExceeded:
            raise httpx.ReadTimeout("...", request=request) from None
    """
