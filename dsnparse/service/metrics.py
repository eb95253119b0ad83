"""Prometheus metrics of ``GET /metrics`` (text exposition format 0.0.4).

``dsnparse_http_requests_total{method, route, status}``
    requests answered, by route template (``/v1/events/{provider}``: the address of
    ``/v1/suppressions/{address}`` is never a label) and HTTP status.
``dsnparse_http_request_duration_seconds{route}``
    time from the request's arrival to the end of the response (histogram, seconds).
``dsnparse_verdicts_total{source, kind, fault}``
    records returned: ``source`` is ``messages`` or the provider name, ``kind`` the
    report kind (``bounce``, ``delay``, ``complaint``…), ``fault`` the verdict's fault
    (``recipient``, ``sender``…; ``none`` when it has none).
``dsnparse_ledger_events_recorded_total{source}``
    new events stored in the ledger (a redelivered event adds nothing).
``dsnparse_webhook_auth_failures_total{provider}``
    webhook requests refused with 401.

With ``--workers N`` (more than one) prometheus-client's multiprocess mode adds up every
worker process (``PROMETHEUS_MULTIPROC_DIR``, set by the command before the workers start).
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               generate_latest)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)
"""Histogram buckets (seconds): parsing a bounce takes about a millisecond on one core,
a message at its time limit 5 s."""


class Metrics:
    """The metrics of one app.  ``registry``: a fresh ``CollectorRegistry`` per app, so
    that several apps in one process (tests) do not share counts."""

    def __init__(self, multiprocess_dir: Optional[str] = None):
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("dsnparse_http_requests", "HTTP requests answered",
                                ("method", "route", "status"), registry=r)
        self.latency = Histogram("dsnparse_http_request_duration_seconds",
                                 "Time to answer a request (seconds)", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.verdicts = Counter("dsnparse_verdicts", "Records returned, by report kind and "
                                "fault", ("source", "kind", "fault"), registry=r)
        self.recorded = Counter("dsnparse_ledger_events_recorded", "New events stored in "
                                "the ledger", ("source",), registry=r)
        self.auth_failures = Counter("dsnparse_webhook_auth_failures", "Webhook requests "
                                     "refused with 401", ("provider",), registry=r)

    def count_records(self, source: str, records: Iterable[dict]) -> None:
        """Count returned records by ``kind`` and ``fault``."""
        for rec in records:
            self.verdicts.labels(source, rec.get("kind") or "none",
                                 rec.get("fault") or "none").inc()

    def render(self) -> tuple[bytes, str]:
        """Return ``(body, content type)`` of the exposition."""
        if self.multiprocess_dir and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            reg = CollectorRegistry()
            multiprocess.MultiProcessCollector(reg)
            return generate_latest(reg), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
