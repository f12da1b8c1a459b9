"""Per-channel counters, latency histograms and Prometheus text exposition."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import NamedTuple

__all__ = (
    "ChannelMetrics",
    "ChannelStats",
    "Histogram",
    "HistogramSnapshot",
    "prometheus_text",
)

# Upper bounds in seconds; the last bucket is +Inf.
_BOUNDS = (
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
    1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class HistogramSnapshot(NamedTuple):
    """Latency distribution: ``counts[i]`` observations were <= ``bounds[i]`` (last: +Inf).

    Attributes
    ----------
    bounds : tuple of float
        Bucket upper bounds in seconds.
    counts : tuple of int
        Non-cumulative count per bucket, one more than ``bounds`` (the +Inf bucket).
    samples : int
        Observations.
    sum_seconds : float
        Sum of the observations in seconds.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    samples: int
    sum_seconds: float

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (NaN when empty).

        Examples
        --------
        >>> h = Histogram()
        >>> h.observe(3e-6)
        >>> h.snapshot().quantile(0.5)
        5e-06
        """
        if not self.samples:
            return float("nan")
        target, seen = q * self.samples, 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            seen += n
            if seen >= target:
                return bound
        return float("inf")


class Histogram:
    """Fixed-bucket latency histogram (seconds)."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Record one latency."""
        self.counts[bisect_left(_BOUNDS, seconds)] += 1
        self.count += 1
        self.total += seconds

    def snapshot(self) -> HistogramSnapshot:
        """Frozen copy."""
        return HistogramSnapshot(_BOUNDS, tuple(self.counts), self.count, self.total)


class ChannelStats:
    """Mutable counters of one channel (the bus updates them on the hot path)."""

    __slots__ = (
        "dead_lettered",
        "delivered",
        "denied",
        "dropped",
        "duplicates",
        "errors",
        "expired",
        "handler_latency",
        "publish_latency",
        "published",
        "retried",
    )

    def __init__(self) -> None:
        self.published = self.delivered = self.dropped = self.retried = 0
        self.dead_lettered = self.errors = self.denied = self.expired = self.duplicates = 0
        self.publish_latency = Histogram()
        self.handler_latency = Histogram()

    def snapshot(self, queue_depth: int) -> ChannelMetrics:
        """Frozen copy, with the current queue depth."""
        return ChannelMetrics(
            self.published,
            self.delivered,
            self.dropped,
            self.retried,
            self.dead_lettered,
            self.errors,
            self.denied,
            self.expired,
            self.duplicates,
            queue_depth,
            self.publish_latency.snapshot(),
            self.handler_latency.snapshot(),
        )


class ChannelMetrics(NamedTuple):
    """Counters of one channel, as returned by ``MessageBus.metrics()``.

    Attributes
    ----------
    published : int
        Messages accepted (after hooks, limits and overflow policy).
    delivered : int
        Successful handler calls (one per subscriber or group per message).
    dropped : int
        Messages discarded by ``drop_new``/``drop_oldest``, or undelivered at stop.
    retried : int
        Handler failures that were retried.
    dead_lettered : int
        Deliveries given up after ``max_attempts``.
    errors : int
        Handler failures (each attempt), filter errors and rejected publishes.
    denied : int
        Publish or subscribe attempts refused by authorization.
    expired : int
        Messages older than the channel ``ttl`` at dispatch.
    duplicates : int
        Publishes dropped by the idempotency window.
    queue_depth : int
        Messages waiting now.
    publish_latency : HistogramSnapshot
        Time inside ``publish`` (sampled, see ``BusConfig.metrics_sample_every``).
    handler_latency : HistogramSnapshot
        Time inside handlers (sampled).
    """

    published: int
    delivered: int
    dropped: int
    retried: int
    dead_lettered: int
    errors: int
    denied: int
    expired: int
    duplicates: int
    queue_depth: int
    publish_latency: HistogramSnapshot
    handler_latency: HistogramSnapshot


_COUNTERS = (
    "published",
    "delivered",
    "dropped",
    "retried",
    "dead_lettered",
    "errors",
    "denied",
    "expired",
    "duplicates",
)


def prometheus_text(
    channels: Mapping[str, ChannelMetrics],
    *,
    prefix: str = "neuralcore_bus",
    failed_tasks: int | None = None,
) -> str:
    """Prometheus text exposition (format 0.0.4) of channel metrics.

    Examples
    --------
    >>> stats = ChannelStats()
    >>> stats.published = 3
    >>> text = prometheus_text({"a": stats.snapshot(0)})
    >>> 'neuralcore_bus_published_total{channel="a"} 3' in text
    True
    """
    lines: list[str] = []
    for counter in _COUNTERS:
        name = f"{prefix}_{counter}_total"
        lines += [f"# HELP {name} Messages {counter} per channel.", f"# TYPE {name} counter"]
        lines += [
            f'{name}{{channel="{_esc(ch)}"}} {getattr(m, counter)}' for ch, m in channels.items()
        ]
    name = f"{prefix}_queue_depth"
    lines += [f"# HELP {name} Messages waiting.", f"# TYPE {name} gauge"]
    lines += [f'{name}{{channel="{_esc(ch)}"}} {m.queue_depth}' for ch, m in channels.items()]
    for hist in ("publish_latency", "handler_latency"):
        name = f"{prefix}_{hist}_seconds"
        lines += [f"# HELP {name} {hist.replace('_', ' ')} (sampled).", f"# TYPE {name} histogram"]
        for ch, m in channels.items():
            lines += _histogram_lines(name, _esc(ch), getattr(m, hist))
    if failed_tasks is not None:
        name = f"{prefix}_failed_tasks_total"
        lines += [
            f"# HELP {name} Background tasks of the bus that failed (see health()).",
            f"# TYPE {name} counter",
            f"{name} {failed_tasks}",
        ]
    return "\n".join(lines) + "\n"


def _histogram_lines(name: str, channel: str, h: HistogramSnapshot) -> list[str]:
    out, running = [], 0
    for bound, n in zip((*h.bounds, float("inf")), h.counts, strict=True):
        running += n
        le = "+Inf" if bound == float("inf") else repr(bound)
        out.append(f'{name}_bucket{{channel="{channel}",le="{le}"}} {running}')
    out.append(f'{name}_sum{{channel="{channel}"}} {h.sum_seconds}')
    out.append(f'{name}_count{{channel="{channel}"}} {h.samples}')
    return out


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
