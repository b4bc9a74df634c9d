"""Envoy-style access log lines, in Istio's default text format or its JSON variant.

The text line has the fields of Istio's default format (``EnvoyTextLogFormat``), in order::

    [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
    %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
    "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%"
    "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS%
    %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%

for example::

    [2024-05-01T12:00:00.123Z] "GET /reviews/1 HTTP/1.1" 200 - via_upstream - "-" 0 295 4 3 "-" "python-httpx/0.27"
    "5b1c..." "reviews:9080" "127.0.0.1:9080" outbound|9080|v1|reviews.default.svc.cluster.local - - - - default

As in Envoy, a value that is not known prints as ``-``; the start time is UTC with milliseconds and durations
are whole milliseconds. The JSON variant carries the same fields under the keys of Istio's JSON format, with
numbers as numbers and unknown values as ``null``. Unlike Envoy, control characters and quotes inside
request values are escaped, so a header cannot forge or break a line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..config.resources import AccessLogFormat, AccessLogSettings

__all__ = [
    "ACCESS_LOGGER_NAME",
    "AccessLogEntry",
    "AccessLogger",
    "default_details",
    "format_json",
    "format_text",
]

#: The :mod:`logging` logger access lines go to unless another sink is given.
ACCESS_LOGGER_NAME: Final = "libmesh.access"


@dataclass(frozen=True, slots=True)
class AccessLogEntry:
    """What one access log line says about one call. ``None`` means unknown (printed ``-``).

    ``start_time`` is wall-clock seconds since the epoch (:func:`time.time`) when the request arrived.
    ``path`` is the path as the client sent it, before any rewrite (Envoy's ``X-ENVOY-ORIGINAL-PATH``),
    query included. ``protocol`` is ``HTTP/1.1``, ``HTTP/2``... ``response_code`` is 0 when no response was
    sent. ``response_flags`` is Envoy's flag string (``-`` for none). ``response_code_details`` says why the
    code was chosen (see :func:`default_details`). Sizes are body bytes; ``duration_ms`` runs from the start
    to the last byte and ``upstream_service_time_ms`` is the upstream's part.
    ``upstream_cluster`` is Istio's cluster name (``outbound|9080|v1|reviews.default.svc.cluster.local``,
    ``inbound|9080||``). ``route_name`` is the VirtualService route's ``name`` (Istio prints ``default``
    for the default route).
    """

    start_time: float
    method: str | None = None
    path: str | None = None
    protocol: str | None = None
    response_code: int = 0
    response_flags: str = "-"
    response_code_details: str | None = None
    connection_termination_details: str | None = None
    upstream_transport_failure_reason: str | None = None
    bytes_received: int = 0
    bytes_sent: int = 0
    duration_ms: float | None = None
    upstream_service_time_ms: float | None = None
    x_forwarded_for: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    authority: str | None = None
    upstream_host: str | None = None
    upstream_cluster: str | None = None
    upstream_local_address: str | None = None
    downstream_local_address: str | None = None
    downstream_remote_address: str | None = None
    requested_server_name: str | None = None
    route_name: str | None = None


# Envoy's response code details for the outcomes libmesh produces itself, keyed by response flag.
_FLAG_DETAILS: Final[dict[str, str]] = {
    "FI": "fault_filter_abort",
    "UT": "response_timeout",
    "NR": "route_not_found",
    "NC": "cluster_not_found",
    "UH": "no_healthy_upstream",
    "UO": "upstream_reset_before_response_started{overflow}",
    "UF": "upstream_reset_before_response_started{connection_failure}",
    "UC": "upstream_reset_before_response_started{connection_termination}",
    "UR": "upstream_reset_before_response_started{remote_reset}",
    "DC": "downstream_remote_disconnect",
}


def default_details(response_code: int, response_flags: str) -> str | None:
    """Envoy's ``%RESPONSE_CODE_DETAILS%`` for a call libmesh answered or forwarded: the detail of the
    first flag that explains the code (``fault_filter_abort`` for ``FI``, ``response_timeout`` for
    ``UT``...), else ``via_upstream`` when a response arrived, else ``None``.

    Direct responses and redirects carry no flag; pass ``direct_response`` for them explicitly.
    """
    if response_flags and response_flags != "-":
        for flag in response_flags.split(","):
            detail = _FLAG_DETAILS.get(flag)
            if detail is not None:
                return detail
    return "via_upstream" if response_code else None


_last_second: tuple[int, str] = (-1, "")


def _start_time(epoch: float) -> str:
    global _last_second
    seconds, ms = divmod(int(epoch * 1000), 1000)
    second, prefix = _last_second
    if second != seconds:
        # Lines come in bursts within the same second; formatting the date once per second saves most of
        # the cost of a line.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, prefix)
    return f"{prefix}.{ms:03d}Z"


# Printable ASCII stays as is; a quote, a backslash and every control character are escaped.
_ESCAPES: Final[dict[int, str]] = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)},
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


def _text(value: str | None) -> str:
    if value is None or value == "":
        return "-"
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return value.translate(_ESCAPES)


def _millis(value: float | None) -> str:
    return "-" if value is None else str(int(value))


def format_text(entry: AccessLogEntry) -> str:
    """The entry as one line of Istio's default text format (no trailing newline)."""
    e = entry
    details = e.response_code_details or default_details(e.response_code, e.response_flags)
    return (
        f'[{_start_time(e.start_time)}] "{_text(e.method)} {_text(e.path)} {_text(e.protocol)}" '
        f"{e.response_code} {_text(e.response_flags)} {_text(details)} "
        f'{_text(e.connection_termination_details)} "{_text(e.upstream_transport_failure_reason)}" '
        f"{e.bytes_received} {e.bytes_sent} {_millis(e.duration_ms)} {_millis(e.upstream_service_time_ms)} "
        f'"{_text(e.x_forwarded_for)}" "{_text(e.user_agent)}" "{_text(e.request_id)}" '
        f'"{_text(e.authority)}" "{_text(e.upstream_host)}" {_text(e.upstream_cluster)} '
        f"{_text(e.upstream_local_address)} {_text(e.downstream_local_address)} "
        f"{_text(e.downstream_remote_address)} {_text(e.requested_server_name)} {_text(e.route_name)}"
    )


def _or_none(value: str | None) -> str | None:
    return value if value else None


def format_json(entry: AccessLogEntry) -> str:
    """The entry as one JSON object on one line, with the keys of Istio's JSON access log format."""
    e = entry
    details = e.response_code_details or default_details(e.response_code, e.response_flags)
    service_time = None if e.upstream_service_time_ms is None else str(int(e.upstream_service_time_ms))
    record: dict[str, Any] = {
        "start_time": _start_time(e.start_time),
        "method": _or_none(e.method),
        "path": _or_none(e.path),
        "protocol": _or_none(e.protocol),
        "response_code": e.response_code,
        "response_flags": e.response_flags or "-",
        "response_code_details": details,
        "connection_termination_details": _or_none(e.connection_termination_details),
        "upstream_transport_failure_reason": _or_none(e.upstream_transport_failure_reason),
        "bytes_received": e.bytes_received,
        "bytes_sent": e.bytes_sent,
        "duration": None if e.duration_ms is None else int(e.duration_ms),
        # Envoy reads this one from a response header, so it is a string in JSON too.
        "upstream_service_time": service_time,
        "x_forwarded_for": _or_none(e.x_forwarded_for),
        "user_agent": _or_none(e.user_agent),
        "request_id": _or_none(e.request_id),
        "authority": _or_none(e.authority),
        "upstream_host": _or_none(e.upstream_host),
        "upstream_cluster": _or_none(e.upstream_cluster),
        "upstream_local_address": _or_none(e.upstream_local_address),
        "downstream_local_address": _or_none(e.downstream_local_address),
        "downstream_remote_address": _or_none(e.downstream_remote_address),
        "requested_server_name": _or_none(e.requested_server_name),
        "route_name": _or_none(e.route_name),
    }
    return json.dumps(record, separators=(",", ":"))


class AccessLogger:
    """Writes one line per call to a :class:`logging.Logger` (``libmesh.access`` at INFO by default) or to a
    callable ``sink`` that takes the line (without a newline)::

        access = AccessLogger("JSON")                  # logging.getLogger("libmesh.access")
        access = AccessLogger(sink=print)              # straight to stdout
        if access.enabled:
            access.log(AccessLogEntry(start_time=t0, method="GET", path="/", ...))

    Check :attr:`enabled` before building an entry: with a logger that drops INFO it is ``False`` and
    nothing needs computing.
    """

    def __init__(
        self,
        format: AccessLogFormat | str = "TEXT",
        sink: logging.Logger | Callable[[str], object] | None = None,
    ) -> None:
        if str(format).upper() not in ("TEXT", "JSON"):
            raise ValueError(f"access log format must be TEXT or JSON, not {format!r}")
        self.format = str(format).upper()
        self._formatter = format_json if self.format == "JSON" else format_text
        target = logging.getLogger(ACCESS_LOGGER_NAME) if sink is None else sink
        self._logger: logging.Logger | None = target if isinstance(target, logging.Logger) else None
        self._sink: Callable[[str], object] | None = None if isinstance(target, logging.Logger) else target

    @classmethod
    def from_settings(
        cls, settings: AccessLogSettings | None, sink: logging.Logger | Callable[[str], object] | None = None
    ) -> AccessLogger | None:
        """The logger MeshConfig's ``telemetry.accessLog`` asks for, or ``None`` when access logging is off
        (Istio's default: it is on only when ``enabled: true``)."""
        if settings is None or not settings.enabled:
            return None
        return cls(settings.format or "TEXT", sink)

    @property
    def enabled(self) -> bool:
        """Whether a line would be written (the logger accepts INFO, or a sink was given)."""
        if self._logger is None:
            return True
        return self._logger.isEnabledFor(logging.INFO)

    def line(self, entry: AccessLogEntry) -> str:
        """The formatted line for ``entry``, without writing it."""
        return self._formatter(entry)

    def log(self, entry: AccessLogEntry) -> None:
        """Write the line for ``entry``."""
        if self._logger is not None:
            if self._logger.isEnabledFor(logging.INFO):
                self._logger.info(self._formatter(entry))
        elif self._sink is not None:
            self._sink(self._formatter(entry))
