"""The worker: dispatch due deliveries and poll agencies for status, on APScheduler.

dispatch: claim due Delivery rows under a lease, render each with the agency's mapping, deliver
through its adapter, record the receipt or schedule a retry. Claims loop until nothing is due, so
a backlog drains without waiting for the next tick.
poll: per agency, on its own schedule; the cursor lives in the database and is saved with the
updates it produced.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from adapters.base import POLL, AdapterError, Outbound, PermanentError, TransientError
from hub import inbound, outbox
from hub.outbox import RetryPolicy
from hub.services import Hub
from mappings.engine import AgencyMapping, RenderError

log = logging.getLogger("loket.worker")


def retry_policy(mapping: AgencyMapping) -> RetryPolicy:
    spec = mapping.extra.get("retry") or {}
    return RetryPolicy(
        **{
            k: spec[k]
            for k in ("max_attempts", "base_seconds", "multiplier", "cap_seconds")
            if k in spec
        }
    )


def working_language(mapping: AgencyMapping, case_language: str) -> str:
    """The agency works in the consumer's language when it can, else in its first language."""
    return case_language if case_language in mapping.languages else mapping.languages[0]


@dataclass
class DispatchStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0


class Worker:
    def __init__(self, hub: Hub, worker_id: str | None = None):
        self.hub = hub
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self.scheduler: BlockingScheduler | None = None

    # ----------------------------------------------------------------------------------- dispatch

    def dispatch_once(self) -> DispatchStats:
        """Claim and deliver until nothing is due (or the worker is stopping)."""
        stats = DispatchStats()
        settings = self.hub.settings
        while not self._stop.is_set():
            claimed = outbox.claim(
                self.hub.db,
                worker_id=self.worker_id,
                now=self.hub.clock.now(),
                lease_seconds=settings.lease_seconds,
                limit=settings.batch_size,
            )
            if not claimed:
                break
            for item in claimed:
                self._deliver(item, stats)
            if len(claimed) < settings.batch_size:
                break
        return stats

    def _deliver(self, item: outbox.Claimed, stats: DispatchStats) -> None:
        mapping = self.hub.directory[item.agency_id]
        payload = item.payload
        try:
            if payload is None:
                payload = mapping.render(item.document)
            adapter = self.hub.directory.adapter(item.agency_id)
            receipt = adapter.deliver(
                Outbound(
                    idempotency_key=item.idempotency_key,
                    case_reference=item.case_reference,
                    agency_id=item.agency_id,
                    payload=payload,
                    language=working_language(mapping, item.language),
                )
            )
        except RenderError as exc:
            error: AdapterError = PermanentError(f"cannot render the case for this agency: {exc}")
        except AdapterError as exc:
            error = exc
        except Exception as exc:  # a bug in an adapter: keep the row, retry later, log loudly
            log.exception("adapter %s raised unexpectedly", item.agency_id)
            error = TransientError(f"unexpected {type(exc).__name__}: {exc}")
        else:
            outbox.complete(self.hub.db, item, receipt, payload, self.hub.clock.now(), mapping)
            stats.delivered += 1
            log.info(
                "delivered %s to %s as %s",
                item.case_reference,
                item.agency_id,
                receipt.agency_reference,
            )
            return
        state = outbox.fail(
            self.hub.db, item, error, self.hub.clock.now(), retry_policy(mapping), payload=payload
        )
        log.warning(
            "delivery %s to %s failed (%s): %s",
            item.case_reference,
            item.agency_id,
            state,
            error.detail,
        )
        if state == outbox.DEAD:
            stats.dead += 1
        else:
            stats.retried += 1

    # --------------------------------------------------------------------------------------- poll

    def poll_agency(self, agency_id: str) -> inbound.ApplyStats | None:
        mapping = self.hub.directory[agency_id]
        db, now = self.hub.db, self.hub.clock.now()
        try:
            adapter = self.hub.directory.adapter(agency_id)
            if POLL not in adapter.capabilities:
                return None
            result = adapter.poll(
                inbound.get_cursor(db, agency_id), inbound.open_items(db, agency_id)
            )
        except AdapterError as exc:
            inbound.record_poll_error(db, agency_id, exc.detail, now)
            log.warning("poll %s failed: %s", agency_id, exc.detail)
            return None
        except Exception as exc:
            log.exception("poll %s raised unexpectedly", agency_id)
            inbound.record_poll_error(db, agency_id, f"unexpected {type(exc).__name__}: {exc}", now)
            return None
        stats = inbound.apply_poll(db, mapping, result, self.hub.clock.now())
        if result.updates:
            log.info("poll %s: %s", agency_id, stats.counts)
        return stats

    # ------------------------------------------------------------------------------------ running

    def poll_interval(self, mapping: AgencyMapping) -> float:
        if self.hub.settings.poll_seconds:
            return self.hub.settings.poll_seconds
        return mapping.poll_every.seconds if mapping.poll_every else 300.0

    def build_scheduler(self) -> BlockingScheduler:
        agencies: Mapping[str, AgencyMapping] = self.hub.directory.agencies
        scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=2 + len(agencies))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        scheduler.add_job(
            self.dispatch_once,
            "interval",
            seconds=self.hub.settings.dispatch_seconds,
            id="dispatch",
            name="dispatch deliveries",
            next_run_time=_now(),
        )
        for agency_id, mapping in agencies.items():
            scheduler.add_job(
                self.poll_agency,
                "interval",
                args=[agency_id],
                seconds=self.poll_interval(mapping),
                id=f"poll:{agency_id}",
                name=f"poll {agency_id}",
                next_run_time=_now(),
            )
        return scheduler

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; in-flight deliveries finish, leases of the rest expire."""
        self.scheduler = self.build_scheduler()

        def stop(signum, _frame):
            log.info("worker %s stopping (signal %s)", self.worker_id, signum)
            self._stop.set()
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("worker %s started: %d agencies", self.worker_id, len(self.hub.directory.ids()))
        try:
            self.scheduler.start()
        finally:
            self.hub.directory.close()


def _now():
    from datetime import datetime

    return datetime.now(UTC)
