"""Istio validation rules: destination_rule."""

from __future__ import annotations
