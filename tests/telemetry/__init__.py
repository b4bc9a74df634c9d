"""Telemetry: Istio metrics, access logs, OpenTelemetry spans and inbound-context propagation."""
