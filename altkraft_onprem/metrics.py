"""Prometheus metrics. Under gunicorn every process writes to PROMETHEUS_MULTIPROC_DIR (set by
`altkraft run` before any worker starts) and /metrics aggregates them."""
from __future__ import annotations

import os
import threading
import time

from flask import Response, g, request

_metrics: dict = {}
_creating = threading.Lock()


def _get():
    # Created on first use, once per process: the first requests of a gthread worker arrive
    # together, and registering a metric twice raises DuplicateTimeseries (a 500).
    if not _metrics:
        with _creating:
            if not _metrics:
                from prometheus_client import Counter, Histogram

                _metrics.update(
                    requests=Counter("altkraft_http_requests_total", "HTTP requests answered",
                                     ["method", "endpoint", "status"]),
                    latency=Histogram("altkraft_http_request_seconds", "HTTP request latency",
                                      ["endpoint"]),
                    jobs=Counter("altkraft_jobs_total", "Background jobs by outcome",
                                 ["task", "outcome"]))
    return _metrics


def count_job(task: str, outcome: str) -> None:
    _get()["jobs"].labels(task, outcome).inc()


def init_app(app) -> None:
    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def observe(response):
        metrics = _get()
        endpoint = request.endpoint or "unmatched"
        metrics["requests"].labels(request.method, endpoint, str(response.status_code)).inc()
        if "request_started" in g:
            metrics["latency"].labels(endpoint).observe(time.perf_counter() - g.request_started)
        return response


def render(queue_depth: int | None) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    _get()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    if queue_depth is not None:
        gauge = GaugeMetricFamily("altkraft_queue_depth", "Jobs waiting in the queue")
        gauge.add_metric([], queue_depth)
        extra = CollectorRegistry()
        extra.register(_Static(gauge))
        text += generate_latest(extra)
    return Response(text, content_type=CONTENT_TYPE_LATEST)


class _Static:
    def __init__(self, family):
        self.family = family

    def collect(self):
        yield self.family
