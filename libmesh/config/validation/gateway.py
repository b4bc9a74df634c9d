"""Istio validation rules: gateway."""

from __future__ import annotations
