"""Istio validation rules: virtual_service."""

from __future__ import annotations
