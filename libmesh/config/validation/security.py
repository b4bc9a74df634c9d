"""Istio validation rules: security."""

from __future__ import annotations
