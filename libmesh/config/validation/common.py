"""Istio validation rules: common."""

from __future__ import annotations
