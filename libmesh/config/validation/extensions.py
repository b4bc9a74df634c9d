"""Istio validation rules: extensions."""

from __future__ import annotations
