"""Prometheus metrics.

The worker counts what it does (deliveries, attempts, failures by class, polls) in its own process
and serves them on LOKET_WORKER_METRICS_PORT. The web app's /metrics reads the shared truth from
the database at scrape time (queue depth and age per agency, dead letters, poll lag, breakers), so
it is right however many workers and web processes run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub import queries
from hub.services import Hub

# ------------------------------------------------------------------------------ worker (counters)

DELIVERIES = Counter(
    "loket_deliveries", "Deliveries by final outcome of an attempt", ["agency", "outcome"]
)  # delivered | duplicate | retry | dead
ATTEMPTS = Counter("loket_delivery_attempts", "Delivery attempts", ["agency"])
FAILURES = Counter(
    "loket_delivery_failures", "Failed delivery attempts by class", ["agency", "class"]
)  # transient | permanent
DELIVERY_SECONDS = Histogram(
    "loket_delivery_seconds",
    "Time the adapter took to deliver",
    ["agency"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POLLS = Counter("loket_polls", "Polls by outcome", ["agency", "outcome"])  # ok | error | skipped
STATUS_UPDATES = Counter(
    "loket_status_updates", "Status updates read, by what became of them", ["agency", "outcome"]
)
POLL_SECONDS = Histogram("loket_poll_seconds", "Time one poll of an agency took", ["agency"])

# ------------------------------------------------------------------ web process (counters, own)

# Counted by each web process (hub/ratelimits.py) and served on its /metrics with the rest.
CASE_GUESS_ALARMS = Counter(
    "loket_case_guess_alarms",
    "Wrong tracking codes for one case beyond LOKET_TRACKING_CASE_LIMIT (a case under attack)",
    registry=None,
)
CONFIRMATIONS_WITHHELD = Counter(
    "loket_confirmations_withheld",
    "Confirmation mails not sent: the recipient had LOKET_CONFIRMATION_MAIL_LIMIT already",
    registry=None,
)


# ------------------------------------------------------------------------------- web (from DB)


class DatabaseCollector(Collector):
    def __init__(self, hub: Hub):
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.hub.clock.now()
        snapshot = queries.flow_snapshot(self.hub)
        depth = GaugeMetricFamily(
            "loket_queue_depth", "Deliveries per agency and state", labels=["agency", "state"]
        )
        age = GaugeMetricFamily(
            "loket_queue_oldest_age_seconds",
            "Age of the oldest delivery not yet done, per agency",
            labels=["agency"],
        )
        lag = GaugeMetricFamily(
            "loket_poll_lag_seconds", "Time since the last successful poll", labels=["agency"]
        )
        breaker = GaugeMetricFamily(
            "loket_breaker_open", "1 when the agency's breaker is not closed", labels=["agency"]
        )
        paused = GaugeMetricFamily(
            "loket_agency_paused", "1 when an operator paused the agency", labels=["agency"]
        )
        unmatched = GaugeMetricFamily("loket_unmatched_updates", "Agency statuses not matched yet")
        problems = GaugeMetricFamily(
            "loket_inbound_problems", "Unreadable inbound items to look at"
        )
        for (agency, state), count in snapshot.depth.items():
            depth.add_metric([agency, state], count)
        for agency, oldest in snapshot.oldest_unfinished.items():
            age.add_metric([agency], max(0.0, (now - _aware(oldest)).total_seconds()))
        for agency, last in snapshot.last_poll.items():
            lag.add_metric([agency], max(0.0, (now - last).total_seconds()))
        for agency, state in snapshot.controls.items():
            breaker.add_metric([agency], 0 if state.breaker == "closed" else 1)
            paused.add_metric([agency], 1 if state.paused else 0)
        unmatched.add_metric([], snapshot.unmatched_updates)
        problems.add_metric([], snapshot.inbound_problems)
        yield from (depth, age, lag, breaker, paused, unmatched, problems)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


def web_registry(hub: Hub) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(hub))
    registry.register(CASE_GUESS_ALARMS)
    registry.register(CONFIRMATIONS_WITHHELD)
    return registry
