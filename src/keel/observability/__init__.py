"""Observability: Prometheus metrics."""

from keel.observability.metrics import CONTENT_TYPE, ServiceMetrics

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]
