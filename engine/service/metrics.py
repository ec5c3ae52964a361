"""Prometheus metrics of one service, in a registry of its own (several services may share a process)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from engine.connectors.connector import CallRecord

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECENT_SECONDS = 300.0
"""The window of `Metrics.recent`: event outcomes of the last five minutes."""
_SLICE = 10.0
"""Recent outcomes are counted in slices of this many seconds."""
_SLICES = int(RECENT_SECONDS / _SLICE)


RELOAD_RESULTS = ("applied", "invalid", "unchanged", "failed")
"""What a hot reload can end as (`mesbridge_reloads_total{result}`)."""


class Metrics:
    """The service's counters, histograms and gauges.

    Event outcomes: `ok`, `skipped`, `failed` (the pipeline answered an error), `rejected` (the request
    was refused before any pipeline ran), `accepted` (queued), `duplicate` (a repeat of an event with an
    idempotency key, answered from the store), `delivered`, `retried` and `dead` (queue deliveries).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started = clock()
        self._recent: dict[tuple[str, str], collections.deque[list[int]]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "mesbridge_events", "Events by pipeline and outcome", ["pipeline", "outcome"], registry=r
        )
        self.event_seconds = Histogram(
            "mesbridge_event_seconds",
            "Pipeline run time",
            ["pipeline"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.calls = Counter(
            "mesbridge_erp_calls",
            "ERP/MES HTTP attempts by connector and status",
            ["connector", "status"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "mesbridge_erp_call_seconds",
            "Latency of each HTTP attempt to an external system",
            ["connector"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "mesbridge_retries", "Queue deliveries scheduled again", ["pipeline"], registry=r
        )
        self.dead_letters = Counter(
            "mesbridge_dead_letters", "Events moved to the dead letters", ["pipeline"], registry=r
        )
        self.queue_depth = Gauge(
            "mesbridge_queue_depth", "Unfinished queued events by pipeline", ["pipeline"], registry=r
        )
        self.reloads = Counter("mesbridge_reloads", "Config reloads by result", ["result"], registry=r)
        self.config = Gauge(
            "mesbridge_config_info", "The config version served (value 1)", ["version"], registry=r
        )
        self.polled = Counter(
            "mesbridge_polled_records",
            "Records read by pollers, by result",
            ["pipeline", "result"],
            registry=r,
        )
        self.poll_rounds = Counter(
            "mesbridge_poll_rounds",
            "Poll rounds by result: ok, or failed (the cursor kept)",
            ["pipeline", "result"],
            registry=r,
        )
        self.traces = Counter(
            "mesbridge_traces",
            "Traces by result: written, dropped (the buffer was full or the store failed)",
            ["result"],
            registry=r,
        )
        self._version: str | None = None
        self._depth_labels: set[str] = set()
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once per label set (these series are never removed)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def event(self, pipeline: str, outcome: str, seconds: float | None = None) -> None:
        """Count one event outcome (and its run time when given)."""
        self._child(self.events, pipeline, outcome).inc()
        if seconds is not None:
            self._child(self.event_seconds, pipeline).observe(seconds)
        now = int(self.clock() // _SLICE)
        slices = self._recent.get((pipeline, outcome))
        if slices is None:
            slices = self._recent[pipeline, outcome] = collections.deque(maxlen=_SLICES + 1)
        if slices and slices[-1][0] == now:
            slices[-1][1] += 1
        else:
            slices.append([now, 1])

    def recent(self) -> tuple[float, dict[str, dict[str, int]]]:
        """The event outcomes of the last `RECENT_SECONDS` per pipeline and outcome, with the length of
        that window in seconds: since the start when that is shorter, but at least a minute (a rate
        over the first seconds alone would read as a burst)."""
        now = self.clock()
        oldest = int(now // _SLICE) - _SLICES
        counts: dict[str, dict[str, int]] = {}
        for (pipeline, outcome), slices in list(self._recent.items()):
            total = sum(count for index, count in list(slices) if index > oldest)
            if total:
                counts.setdefault(pipeline, {})[outcome] = total
        return min(RECENT_SECONDS, max(now - self.started, 60.0)), counts

    def totals(self) -> dict[str, dict[str, int]]:
        """Every event outcome since the service started, per pipeline and outcome."""
        counts: dict[str, dict[str, int]] = {}
        for metric in self.events.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    counts.setdefault(labels["pipeline"], {})[labels["outcome"]] = int(sample.value)
        return counts

    def calls_by_status(self) -> dict[str, dict[str, int]]:
        """HTTP attempts since the service started, per connector and status (`error`: no reply)."""
        counts: dict[str, dict[str, int]] = {}
        for metric in self.calls.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    counts.setdefault(labels["connector"], {})[labels["status"]] = int(sample.value)
        return counts

    def on_call(self, record: CallRecord) -> None:
        """The connectors' `on_call` hook: one HTTP attempt."""
        status = str(record.status) if record.status is not None else "error"
        self._child(self.calls, record.connector, status).inc()
        self._child(self.call_seconds, record.connector).observe(record.latency)

    def set_version(self, version: str) -> None:
        """Report the config version now served."""
        if self._version is not None:
            self.config.remove(self._version)
        self._version = version
        self.config.labels(version).set(1)

    def set_depth(self, depth: dict[str, int]) -> None:
        """Report queue depth per pipeline; pipelines now empty read 0."""
        for pipeline in self._depth_labels - set(depth):
            self.queue_depth.labels(pipeline).set(0)
        for pipeline, count in depth.items():
            self.queue_depth.labels(pipeline).set(count)
        self._depth_labels |= set(depth)

    def reload_counts(self) -> dict[str, int]:
        """Reloads so far by result, for the status endpoint: every result, 0 until it happens."""
        counts: dict[str, int] = dict.fromkeys(RELOAD_RESULTS, 0)
        for metric in self.reloads.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["result"]] = int(sample.value)
        return counts

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: Any) -> float:
        """One sample's value (0 when absent); for tests and the status endpoint."""
        found = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return float(found or 0.0)
