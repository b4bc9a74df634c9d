"""Istio validation rules: service_entry."""

from __future__ import annotations
