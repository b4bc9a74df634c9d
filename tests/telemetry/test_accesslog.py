"""Envoy-style access log lines: Istio's default text format, its JSON variant and the sinks."""

from __future__ import annotations

import calendar
import json
import logging

import pytest

from libmesh.config import AccessLogSettings
from libmesh.telemetry.accesslog import (
    ACCESS_LOGGER_NAME,
    AccessLogEntry,
    AccessLogger,
    default_details,
    format_json,
    format_text,
)

# 2020-11-25T21:26:18.409Z, the time of the sample line in Istio's access log documentation.
START = calendar.timegm((2020, 11, 25, 21, 26, 18)) + 0.409

FULL = AccessLogEntry(
    start_time=START,
    method="GET",
    path="/status/418",
    protocol="HTTP/1.1",
    response_code=418,
    response_flags="-",
    bytes_received=0,
    bytes_sent=135,
    duration_ms=4.9,
    upstream_service_time_ms=4,
    user_agent="curl/7.73.0-DEV",
    request_id="84961386-6d84-929d-98bd-c5aee93b5c88",
    authority="httpbin:8000",
    upstream_host="10.44.1.27:80",
    upstream_cluster="outbound|8000||httpbin.foo.svc.cluster.local",
    upstream_local_address="10.44.1.23:37652",
    downstream_local_address="10.0.45.184:8000",
    downstream_remote_address="10.44.1.23:46520",
    route_name="default",
)

# Istio's JSON access log keys (EnvoyJSONLogFormatIstio).
ISTIO_JSON_KEYS = {
    "start_time",
    "route_name",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "connection_termination_details",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "x_forwarded_for",
    "user_agent",
    "request_id",
    "authority",
    "upstream_host",
    "upstream_cluster",
    "upstream_local_address",
    "downstream_local_address",
    "downstream_remote_address",
    "requested_server_name",
    "upstream_transport_failure_reason",
}


def test_text_line_matches_istios_documented_example() -> None:
    assert format_text(FULL) == (
        '[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" '
        '"curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "10.44.1.27:80" '
        "outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default"
    )


def test_text_line_with_nothing_known_prints_dashes() -> None:
    assert format_text(AccessLogEntry(start_time=0.0)) == (
        '[1970-01-01T00:00:00.000Z] "- - -" 0 - - - "-" 0 0 - - "-" "-" "-" "-" "-" - - - - - -'
    )


def test_text_line_escapes_quotes_and_control_characters() -> None:
    entry = AccessLogEntry(start_time=START, user_agent='evil" 200\n[forged', path="/a\\b")
    line = format_text(entry)
    assert "\n" not in line
    assert '"evil\\" 200\\x0a[forged"' in line
    assert " /a\\\\b " in line


def test_text_line_keeps_unicode_printable() -> None:
    assert '"Mozilla/5.0 (Überall)"' in format_text(
        AccessLogEntry(start_time=START, user_agent="Mozilla/5.0 (Überall)")
    )


@pytest.mark.parametrize(
    ("code", "flags", "expected"),
    [
        (200, "-", "via_upstream"),
        (0, "-", None),
        (503, "UO", "upstream_reset_before_response_started{overflow}"),
        (504, "UT", "response_timeout"),
        (500, "FI", "fault_filter_abort"),
        (200, "DI", "via_upstream"),  # a delay alone changes nothing about the response
        (503, "DI,FI", "fault_filter_abort"),
        (503, "UH", "no_healthy_upstream"),
        (404, "NR", "route_not_found"),
        (503, "URX", "via_upstream"),  # retries exhausted: the last upstream answer is passed on
    ],
)
def test_default_details(code: int, flags: str, expected: str | None) -> None:
    assert default_details(code, flags) == expected


def test_explicit_details_win() -> None:
    entry = AccessLogEntry(start_time=START, response_code=200, response_code_details="direct_response")
    assert " 200 - direct_response - " in format_text(entry)


def test_json_has_istios_keys_and_types() -> None:
    record = json.loads(format_json(FULL))
    assert set(record) == ISTIO_JSON_KEYS
    assert record["start_time"] == "2020-11-25T21:26:18.409Z"
    assert record["response_code"] == 418
    assert record["bytes_sent"] == 135
    assert record["duration"] == 4
    assert record["upstream_service_time"] == "4"  # a response header value in Envoy
    assert record["response_flags"] == "-"
    assert record["response_code_details"] == "via_upstream"
    assert record["x_forwarded_for"] is None
    assert record["requested_server_name"] is None
    assert record["upstream_cluster"] == "outbound|8000||httpbin.foo.svc.cluster.local"


def test_json_is_one_line_even_with_newlines_in_values() -> None:
    line = format_json(AccessLogEntry(start_time=START, user_agent="a\nb"))
    assert "\n" not in line
    assert json.loads(line)["user_agent"] == "a\nb"


def test_logger_sink(caplog: pytest.LogCaptureFixture) -> None:
    access = AccessLogger()
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER_NAME):
        assert access.enabled
        access.log(FULL)
    [record] = caplog.records
    assert record.name == "libmesh.access"
    assert record.levelno == logging.INFO
    assert record.getMessage() == format_text(FULL)


def test_logger_that_drops_info_is_not_enabled() -> None:
    logger = logging.getLogger("libmesh.test.quiet")
    logger.setLevel(logging.WARNING)
    lines: list[str] = []
    logger.addHandler(_ListHandler(lines))
    access = AccessLogger(sink=logger)
    assert not access.enabled
    access.log(FULL)
    assert lines == []


def test_callable_sink_gets_json_lines() -> None:
    lines: list[str] = []
    access = AccessLogger("json", sink=lines.append)
    access.log(FULL)
    access.log(AccessLogEntry(start_time=START, response_code=503, response_flags="UO"))
    assert [json.loads(line)["response_code"] for line in lines] == [418, 503]
    assert access.line(FULL) == lines[0]


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="TEXT or JSON"):
        AccessLogger("XML")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, None),
        (AccessLogSettings(), None),
        (AccessLogSettings(enabled=False), None),
        (AccessLogSettings(enabled=True), "TEXT"),
        (AccessLogSettings(enabled=True, format="JSON"), "JSON"),  # type: ignore[arg-type]
    ],
)
def test_from_settings(settings: AccessLogSettings | None, expected: str | None) -> None:
    access = AccessLogger.from_settings(settings, sink=print)
    assert (access.format if access is not None else None) == expected


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
