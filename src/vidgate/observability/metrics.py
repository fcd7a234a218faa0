"""Prometheus metrics: what one vidgate process did, served at `GET /metrics`.

Each process keeps its own counters in `REGISTRY` (a process-wide registry, like the
default one, but only vidgate's own series), so with several processes each is scraped on
its own (docs/operations.md). Event counters are bumped where the event happens (tasks.py,
engine/step.py, engine/router.py, backends/http/client.py, engine/webhooks.py, store/leases.py);
gauges that describe the database (tasks per state, credits held, outbox depth) and the
router (jobs in flight, breaker state) are read at scrape time (`observability/scrape.py`).

The HTTP middleware is on every request, the fast path's included, so it keeps per-request
work to a dict lookup for pre-bound label children, one counter increment and one
histogram observation.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)
UNMATCHED = "unmatched"  # the route label of requests no route answered: never the raw path
ROUTE_KEY = "vidgate.route"  # scope key where the fast path names the route template it served

# Latency buckets (seconds): status reads are sub-millisecond, uploads take seconds.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
UPSTREAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

tasks_created = Counter("vidgate_tasks_created", "Tasks created, by model and family.",
                        ("model", "family"), registry=REGISTRY)
tasks_completed = Counter("vidgate_tasks_completed", "Tasks completed, by model and channel.",
                          ("model", "channel"), registry=REGISTRY)
tasks_failed = Counter(
    "vidgate_tasks_failed", "Tasks that ended without a video (failed, timed out, cancelled), "
    "by model, channel ('none' before one accepted it) and error code.",
    ("model", "channel", "code"), registry=REGISTRY)
tasks_in_state = Gauge("vidgate_tasks", "Tasks in the database per state (read at scrape).",
                       ("status",), registry=REGISTRY)

channel_in_flight = Gauge(
    "vidgate_channel_jobs_in_flight", "Jobs an upstream accepted and has not finished, per "
    "channel, as this process's router last counted them.", ("channel",), registry=REGISTRY)
channel_breaker = Gauge(
    "vidgate_channel_breaker_state", "Circuit breaker per channel: 0 closed, 1 open, "
    "2 half-open (one trial submit allowed).", ("channel",), registry=REGISTRY)
channel_submits = Counter(
    "vidgate_channel_submits", "Submits to a channel by outcome: accepted, refused (refused "
    "or errored: the next channel is tried), failed (the upstream judged the job invalid).",
    ("channel", "outcome"), registry=REGISTRY)
channel_polls = Counter(
    "vidgate_channel_polls", "Polls of a channel by outcome: running, completed, failed, "
    "transient.", ("channel", "outcome"), registry=REGISTRY)
upstream_duration = Histogram(
    "vidgate_upstream_request_duration_seconds", "Upstream API calls per channel and method, "
    "including ones that failed in transport.", ("channel", "method"),
    buckets=UPSTREAM_BUCKETS, registry=REGISTRY)
completion_lag = Histogram(
    "vidgate_completion_lag_seconds", "From the poll that first saw a job completed upstream "
    "to the commit that reports it completed (download, probe, previews, storage).",
    ("channel",), buckets=LAG_BUCKETS, registry=REGISTRY)
mirrored_bytes = Counter("vidgate_mirrored_bytes", "Result bytes copied into blob storage "
                         "(video and previews), per channel.", ("channel",), registry=REGISTRY)

webhook_outbox_depth = Gauge(
    "vidgate_webhook_outbox_depth", "Webhook events neither delivered nor given up on "
    "(read at scrape).", registry=REGISTRY)
webhook_deliveries = Counter(
    "vidgate_webhook_deliveries", "Webhook delivery attempts by outcome: delivered, retry, "
    "gave_up.", ("outcome",), registry=REGISTRY)

credits_held_total = Counter(
    "vidgate_credits_held_micro", "Credit (micro-USD) held from limited keys at create.",
    registry=REGISTRY)
credits_held_now = Gauge(
    "vidgate_credits_held_now_micro", "Credit (micro-USD) held by unfinished tasks now "
    "(read at scrape).", registry=REGISTRY)
credits_settled = Counter(
    "vidgate_credits_settled_micro", "Settlements at a task's end (micro-USD): charged (the "
    "task's recorded cost) and refunded (the part of its hold given back).", ("outcome",),
    registry=REGISTRY)


def task_ended(model: str, channel: str | None, code: str | None) -> None:
    """A task reached its end here: completed when `code` is None, else failed with it."""
    if code is None:
        tasks_completed.labels(model, channel or "none").inc()
    else:
        tasks_failed.labels(model, channel or "none", code).inc()


def settled(charged: int, refunded: int) -> None:
    if charged:
        credits_settled.labels("charged").inc(charged)
    if refunded:
        credits_settled.labels("refunded").inc(refunded)


class RouteNames:
    """The route template of a request FastAPI answered, from the route it matched.

    Starlette leaves the matched endpoint in the scope; its route's path is the template.
    Looked up once per endpoint and remembered.
    """

    def __init__(self, routes: Callable[[], list[Any]]) -> None:
        self._routes = routes
        self._by_endpoint: dict[Any, str] = {}

    def __call__(self, scope: Scope) -> str:
        named = scope.get(ROUTE_KEY)
        if named is not None:
            return named
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return route.path
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        path = self._by_endpoint.get(endpoint)
        if path is None:
            path = next((r.path for r in self._routes()
                         if getattr(r, "endpoint", None) is endpoint), UNMATCHED)
            self._by_endpoint[endpoint] = path
        return path


class HttpSeries:
    """The HTTP request counter and latency histogram, kept as plain numbers.

    prometheus_client's children take a lock per increment and per bucket; every request
    pays that, on the fast path too. All requests of a process are counted on its event
    loop's thread, so plain lists are enough; they become metric families at scrape.
    """

    def __init__(self, buckets: tuple[float, ...] = HTTP_BUCKETS) -> None:
        self.buckets = buckets
        # (route, method, status) -> [count]; (route, method) -> [per-bucket counts..., sum]
        self.counts: dict[tuple[str, str, str], list[int]] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}

    def bind(self, route: str, method: str, status: int) -> tuple[list[int], list[float]]:
        count = self.counts.setdefault((route, method, str(status)), [0])
        latency = self.latency.setdefault((route, method), [0] * (len(self.buckets) + 2))
        return count, latency

    def observe(self, bound: tuple[list[int], list[float]], seconds: float) -> None:
        count, latency = bound
        count[0] += 1
        latency[bisect_left(self.buckets, seconds)] += 1  # the last slot before sum: +Inf
        latency[-1] += seconds

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "vidgate_http_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=("route", "method", "status"))
        for labels, (count,) in list(self.counts.items()):
            requests.add_metric(labels, count)
        yield requests
        duration = HistogramMetricFamily(
            "vidgate_http_request_duration_seconds", "Time from a request's arrival to the "
            "end of its answer, by route template and method.", labels=("route", "method"))
        for labels, values in list(self.latency.items()):
            running, cumulative = 0, []
            for bound, n in zip((*self.buckets, float("inf")), values[:-1], strict=True):
                running += n
                cumulative.append((_bucket_name(bound), running))
            duration.add_metric(labels, cumulative, values[-1])
        yield duration


def _bucket_name(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


HTTP = HttpSeries()
REGISTRY.register(HTTP)


class HttpMetrics:
    """ASGI middleware: count and time every HTTP request by route template, method, status.

    Series are bound once per (route, method, status) and kept; the method label is bounded
    to the methods HTTP names, so no client can grow the series.
    """

    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    def __init__(self, app: ASGIApp, route_of: Callable[[Scope], str],
                 series: HttpSeries = HTTP) -> None:
        self.app = app
        self.route_of = route_of
        self.series = series
        self._bound: dict[tuple[str, str, int], tuple[list[int], list[float]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees when the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            key = (self.route_of(scope), scope["method"], status)
            bound = self._bound.get(key)
            if bound is None:
                bound = self._bind(key)
            self.series.observe(bound, time.perf_counter() - started)

    def _bind(self, key: tuple[str, str, int]) -> tuple[list[int], list[float]]:
        route, method, status = key
        bound = self.series.bind(route, method if method in self.METHODS else "OTHER", status)
        if len(self._bound) < 10_000:  # the labels are bounded; this is a backstop
            self._bound[key] = bound
        return bound
