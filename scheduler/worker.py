"""The worker: deliver due cases to agencies and poll their status, on APScheduler.

Dispatch runs one lane per agency (its own APScheduler job), so a slow or down agency only holds
up its own lane. Each lane claims its agency's due deliveries under a lease (as the agency's
breaker, pause and in-flight cap allow), renders each with the agency's mapping, delivers through
the adapter, and records the receipt or schedules a retry, looping until nothing is due.

Before a case leaves, its payload is held against the agency's own contract (JSON Schema, XSD,
WSDL types, file layout, email contract), compiled once per agency (`Directory.contract_checker`,
the same check `loket mappings validate` runs): a payload off the contract is never sent; it
becomes a dead letter with the contract's own message for the operators.

Poll runs per agency on its own schedule, under a lease in the database, so among many workers
only one polls a given agency at a time. The cursor is saved with the updates it produced.

What an agency's configured adapter cannot do is never attempted: an agency whose adapter does
not offer POLL (a SOAP WSDL without a status operation) gets no poll job, and a consumer's reply
to an agency whose adapter does not offer MESSAGES goes to the dead letters for an operator to
forward, without calling the adapter. Both read `adapter.capabilities`, the configured ones.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor as ThreadPool
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.exc import OperationalError

from adapters.base import (
    MESSAGES,
    POLL,
    AdapterError,
    ContractViolation,
    OpenItem,
    Outbound,
    OutboundMessage,
    PermanentError,
    PollResult,
    TransientError,
)
from hub import inbound, metrics, outbox
from hub.outbox import DeliveryState
from hub.services import Hub
from mappings.engine import AgencyMapping, RenderError
from mappings.names import NameForms
from scheduler.wakeup import Waker

log = logging.getLogger("loket.worker")
# Receipts are recorded in groups of up to this many (or at the end of a batch), on the lane's
# recorder thread while the next group is sent: a fixed handful of statements per group. A crash
# before recording costs only a repeat delivery with the same idempotency key, which the agency
# recognises.
RECORD_EVERY = 100
# An agency answering faster than this is sent to inline, one request at a time: a hand-off to
# a sending thread costs more than it would overlap. A slower one gets overlapping requests.
OVERLAP_FROM_SECONDS = 0.02
# Retention is counted in months and years: looking once an hour is plenty.
RETENTION_EVERY = 3600.0


@dataclass(frozen=True)
class Sent:
    item: outbox.Claimed
    payload: dict[str, Any] | None
    receipt: Any | None
    error: AdapterError | None


def _done_future(value: Sent) -> Future[Sent]:
    future: Future[Sent] = Future()
    future.set_result(value)
    return future


@dataclass
class DispatchStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def __iadd__(self, other: DispatchStats) -> DispatchStats:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        return self


class _Recorder:
    """Records a lane's receipts group by group on a thread of its own, so the database work of
    one group overlaps sending the next; at most one group is being recorded at a time. A
    receipt whose line a poll holds at that moment is not waited for: it rides along with the
    next group, and `finish` records what is left, waiting if it must. A failure to record is
    raised on the lane's thread (its rows keep their lease until it runs out and are sent
    again, with the same idempotency keys)."""

    def __init__(self, worker: Worker, mapping: AgencyMapping):
        self.worker, self.mapping = worker, mapping
        self.done: list[tuple[outbox.Claimed, Any, dict[str, Any]]] = []
        self._busy: list[tuple[outbox.Claimed, Any, dict[str, Any]]] = []
        self._writing: Future[int] | None = None
        self._pool: ThreadPool | None = None

    def flush(self) -> None:
        if not self.done:
            return
        self._wait()  # the previous group's busy receipts are known after it
        group, self.done, self._busy = self._busy + self.done, [], []
        self._submit(group, skip_busy=True)

    def _submit(self, group: list, *, skip_busy: bool) -> None:
        if self._pool is None:
            self._pool = ThreadPool(max_workers=1, thread_name_prefix=f"record-{self.mapping.id}")
        self._writing = self._pool.submit(self._write, group, skip_busy)

    def _write(
        self, group: list[tuple[outbox.Claimed, Any, dict[str, Any]]], skip_busy: bool
    ) -> int:
        """Record a group; once more if the database gave up on the transaction (a deadlock
        or serialisation failure with another worker): receipts already recorded are skipped."""
        hub = self.worker.hub

        def record() -> tuple[int, list]:
            busy: list[tuple[outbox.Claimed, Any, dict[str, Any]]] | None = (
                [] if skip_busy else None
            )
            recorded = outbox.complete_many(hub.db, group, hub.clock.now(), self.mapping, busy)
            return recorded, busy or []

        try:
            recorded, busy = record()
        except OperationalError as exc:
            log.warning("recording %d receipts of %s again: %s", len(group), self.mapping.id, exc)
            recorded, busy = record()
        self._busy.extend(busy)
        log.info(  # one line per group: a line per delivery costs more than the send
            "delivered %d to %s (%d recorded now)", len(group), self.mapping.id, recorded
        )
        return recorded

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def finish(self) -> None:
        try:
            self.flush()
            self._wait()
            if self._busy:  # the lane is done: now wait for the lines a poll held
                group, self._busy = self._busy, []
                self._submit(group, skip_busy=False)
                self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


class Worker:
    def __init__(self, hub: Hub, worker_id: str | None = None):
        self.hub = hub
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self.scheduler: BlockingScheduler | None = None
        self._lanes: set[str] = set()
        self._lanes_lock = threading.Lock()
        self._lane_pool = ThreadPool(
            max_workers=max(2, min(16, len(hub.directory.ids()))), thread_name_prefix="lane"
        )
        self._held: set[int] = set()  # deliveries claimed by running lanes: their leases renew
        # per agency, for slow agencies only, with the width each was made for
        self._senders: dict[str, tuple[ThreadPool, int]] = {}
        self._latency: dict[str, float] = {}  # per agency: a moving average of its answer time

    # ----------------------------------------------------------------------------------- dispatch

    def dispatch_once(self) -> DispatchStats:
        """One pass over every agency's lane (what the scheduler does concurrently)."""
        stats = DispatchStats()
        for agency_id in self.hub.directory.ids():
            stats += self.dispatch_agency(agency_id)
        return stats

    def dispatch_tick(self) -> int:
        """One cheap query finds the agencies with due deliveries; each gets its lane (a thread
        that drains that agency), unless it already has one. An idle hub costs one query a tick,
        however many agencies it serves. Returns the lanes started."""
        due = outbox.agencies_with_due(self.hub.db, self.hub.clock.now())
        started = 0
        with self._lanes_lock:
            for agency_id in due:
                if agency_id in self._lanes or agency_id not in self.hub.directory:
                    continue
                self._lanes.add(agency_id)
                self._lane_pool.submit(self._run_lane, agency_id)
                started += 1
        return started

    def _run_lane(self, agency_id: str) -> None:
        try:
            self.dispatch_agency(agency_id)
        except Exception:  # a lane must never take the worker down; the rows stay leased
            log.exception("dispatch lane %s failed", agency_id)
        finally:
            with self._lanes_lock:
                self._lanes.discard(agency_id)

    def dispatch_agency(self, agency_id: str) -> DispatchStats:
        """Claim and deliver this agency's due cases until none is due (or the worker stops).
        Everything sent is recorded when this returns."""
        stats = DispatchStats()
        settings = self.hub.settings
        mapping = self.hub.directory[agency_id]
        if not mapping.connected:
            return stats  # a referral body: its lines have no outbox row, there is nothing to send
        recorder = _Recorder(self, mapping)
        held: set[int] = set()
        try:
            while not self._stop.is_set():
                claimed = outbox.claim(
                    self.hub.db,
                    worker_id=self.worker_id,
                    now=self.hub.clock.now(),
                    lease_seconds=settings.lease_seconds,
                    limit=settings.batch_size,
                    agency_id=agency_id,
                    policy=mapping.delivery,
                )
                if not claimed:
                    break
                ids = {c.delivery_id for c in claimed}
                held |= ids
                with self._lanes_lock:
                    self._held |= ids
                if self._deliver_batch(claimed, mapping, stats, recorder):
                    break  # the breaker opened: the rest wait, no attempt burnt
                # A short claim (this worker's share, the allowance's room) is no sign the
                # agency is drained: claim again until nothing comes.
        finally:
            try:
                recorder.finish()
            finally:  # recorded, failed, released or left to expire: no longer renewed
                with self._lanes_lock:
                    self._held -= held
        return stats

    def heartbeat(self) -> int:
        """Tell the others this worker lives and renew the leases its running lanes hold."""
        with self._lanes_lock:
            held = set(self._held)
        return outbox.heartbeat(
            self.hub.db, self.worker_id, self.hub.clock.now(), self.hub.settings.lease_seconds, held
        )

    def _width(self, mapping: AgencyMapping) -> int:
        """How many requests to one agency a lane has open at once: one (sent inline on the
        lane's thread) while the agency answers fast, since handing a send to another thread
        costs more than it overlaps; up to the agency's `concurrency` (capped by what its
        adapter can do from several threads) once its measured answer time makes overlap pay."""
        latency = self._latency.get(mapping.id)
        if latency is None or latency < OVERLAP_FROM_SECONDS:
            return 1
        adapter = self.hub.directory.adapter(mapping.id)
        return max(1, min(mapping.delivery.concurrency, adapter.max_concurrency))

    def _sender(self, mapping: AgencyMapping, width: int) -> ThreadPool:
        """The lane's sending threads, kept for the worker's life (one pool per agency)."""
        with self._lanes_lock:
            pool, made_for = self._senders.get(mapping.id) or (None, 0)
            if pool is None or made_for < width:
                if pool is not None:
                    pool.shutdown(wait=False)
                pool = ThreadPool(max_workers=width, thread_name_prefix=f"send-{mapping.id}")
                self._senders[mapping.id] = (pool, width)
            return pool

    def _deliver_batch(
        self,
        claimed: list[outbox.Claimed],
        mapping: AgencyMapping,
        stats: DispatchStats,
        recorder: _Recorder,
    ) -> bool:
        """Send a claimed batch and hand its receipts to the recorder in groups (recorded on
        another thread while the next group is sent). Sending is adapter work only; a failure
        is recorded at once on this thread, since it may open the breaker.
        Returns True when a failure opened the agency's breaker (the unsent rest is released)."""
        pending = deque(claimed)
        in_flight: deque[Future[Sent]] = deque()
        group = max(1, min(RECORD_EVERY, self.hub.settings.batch_size // 2))
        while pending or in_flight:
            width = self._width(mapping)
            while pending and len(in_flight) < width and not self._stop.is_set():
                item = pending.popleft()
                in_flight.append(
                    self._sender(mapping, width).submit(self._send, item, mapping)
                    if width > 1
                    else _done_future(self._send(item, mapping))
                )
            if not in_flight:
                break  # stopping: the rest keep their lease and are retaken after it expires
            opened = self._settle(in_flight.popleft().result(), mapping, stats, recorder)
            if opened:
                while in_flight:  # already sent: their outcomes are recorded too
                    self._settle(in_flight.popleft().result(), mapping, stats, recorder)
                recorder.flush()
                outbox.release(self.hub.db, list(pending), self.hub.clock.now())
                return True
            if len(recorder.done) >= group:
                recorder.flush()
        recorder.flush()
        return False

    def _send(self, item: outbox.Claimed, mapping: AgencyMapping) -> Sent:
        """The adapter call alone (no database): safe to run on a sending thread."""
        payload = item.payload
        metrics.ATTEMPTS.labels(item.agency_id).inc()
        started = time.perf_counter()
        try:
            adapter = self.hub.directory.adapter(item.agency_id)
            language = mapping.working_language(item.language)
            if item.kind == outbox.MESSAGE and MESSAGES not in adapter.capabilities:
                raise PermanentError(
                    f"the {adapter.kind} adapter of {item.agency_id} is configured without "
                    f"capability {MESSAGES!r}: it cannot carry the consumer's reply; an operator "
                    "must forward it"
                )
            if item.kind == outbox.MESSAGE:
                payload = payload or {"text": item.message_text}
                receipt = adapter.send_message(
                    OutboundMessage(
                        idempotency_key=item.idempotency_key,
                        case_reference=item.case_reference,
                        agency_id=item.agency_id,
                        agency_reference=item.agency_reference or item.case_reference,
                        text=item.message_text or "",
                        language=language,
                        attachments=item.attachments,
                        withdrawal=item.idempotency_key.endswith(outbox.WITHDRAWAL_SUFFIX),
                    )
                )
            else:
                if payload is None:
                    payload = mapping.render(item.document)
                problems = self.hub.directory.contract_checker(item.agency_id)(payload)
                if problems:
                    raise ContractViolation(problems)
                receipt = adapter.deliver(
                    Outbound(
                        idempotency_key=item.idempotency_key,
                        case_reference=item.case_reference,
                        agency_id=item.agency_id,
                        payload=payload,
                        language=language,
                        attachments=item.attachments,
                    )
                )
        except RenderError as exc:
            return Sent(
                item,
                payload,
                None,
                PermanentError(f"cannot render the case for this agency: {exc}"),
            )
        except ContractViolation as exc:
            # Not kept as the payload to retry: after the mapping is fixed, a resend renders anew.
            return Sent(item, None, None, exc)
        except AdapterError as exc:
            return Sent(item, payload, None, exc)
        except Exception as exc:  # a bug in an adapter: keep the row, retry later, log loudly
            log.exception("adapter %s raised unexpectedly", item.agency_id)
            return Sent(
                item, payload, None, TransientError(f"unexpected {type(exc).__name__}: {exc}")
            )
        took = time.perf_counter() - started
        metrics.DELIVERY_SECONDS.labels(item.agency_id).observe(took)
        before = self._latency.get(item.agency_id)
        self._latency[item.agency_id] = took if before is None else before + (took - before) / 8
        return Sent(item, payload, receipt, None)

    def _settle(
        self, sent: Sent, mapping: AgencyMapping, stats: DispatchStats, recorder: _Recorder
    ) -> bool:
        """What a send came to: a receipt joins `done`; a failure is recorded now. True when
        the failure opened the agency's breaker."""
        item = sent.item
        if sent.error is None:
            recorder.done.append((item, sent.receipt, sent.payload))
            stats.delivered += 1
            outcome = "duplicate" if sent.receipt.duplicate else "delivered"
            metrics.DELIVERIES.labels(item.agency_id, outcome).inc()
            log.debug(
                "delivered %s %s to %s as %s",
                item.kind,
                item.case_reference,
                item.agency_id,
                sent.receipt.agency_reference,
            )
            return False
        error = sent.error
        metrics.FAILURES.labels(
            item.agency_id, "transient" if error.retryable else "permanent"
        ).inc()
        failed = outbox.fail(
            self.hub.db, item, error, self.hub.clock.now(), mapping.delivery, payload=sent.payload
        )
        metrics.DELIVERIES.labels(item.agency_id, failed.state).inc()
        log.warning(
            "delivery %s to %s failed (%s): %s",
            item.case_reference,
            item.agency_id,
            failed.state,
            error.detail,
        )
        if failed.state == DeliveryState.DEAD:
            stats.dead += 1
        elif failed.state == DeliveryState.RETRY:
            stats.retried += 1
        if failed.breaker_opened:
            log.warning("breaker for %s opened: its deliveries wait", item.agency_id)
        return failed.breaker_opened

    # --------------------------------------------------------------------------------------- poll

    def can_poll(self, agency_id: str) -> bool:
        """Whether the agency's configured adapter polls. An adapter that cannot even be built
        counts as polling, so that its poll job records the configuration error for operators."""
        capabilities = self.hub.directory.capabilities(agency_id)
        return capabilities is None or POLL in capabilities

    def poll_agency(self, agency_id: str) -> inbound.ApplyStats | None:
        """Poll one agency if its adapter polls and no other worker is polling it; None when
        skipped or failed."""
        if not self.can_poll(agency_id):
            return None
        mapping = self.hub.directory[agency_id]
        db = self.hub.db
        lease = self.hub.settings.poll_lease_seconds
        if not inbound.lease_poll(db, agency_id, self.worker_id, self.hub.clock.now(), lease):
            metrics.POLLS.labels(agency_id, "skipped").inc()
            return None
        started = time.perf_counter()
        try:
            return self._poll_leased(agency_id, mapping)
        finally:
            metrics.POLL_SECONDS.labels(agency_id).observe(time.perf_counter() - started)
            inbound.release_poll(db, agency_id, self.worker_id)

    def _poll_leased(self, agency_id: str, mapping: AgencyMapping) -> inbound.ApplyStats | None:
        db = self.hub.db
        alerts: tuple[inbound.FeedAlert, ...] = ()
        try:
            adapter = self.hub.directory.adapter(agency_id)
            cursor = inbound.get_cursor(db, agency_id)
            items = inbound.open_items(db, agency_id)
            result = adapter.poll(cursor, items)
            alert = self._feed_trouble(agency_id, adapter, cursor, result)
            if alert is not None:
                log.warning("poll %s: %s; re-reading the feed", agency_id, alert.reason)
                alerts = (alert,)
                result = self._reread(adapter, items, result)
        except AdapterError as exc:
            inbound.record_poll_error(db, agency_id, exc.detail, self.hub.clock.now())
            metrics.POLLS.labels(agency_id, "error").inc()
            log.warning("poll %s failed: %s", agency_id, exc.detail)
            return None
        except Exception as exc:
            log.exception("poll %s raised unexpectedly", agency_id)
            inbound.record_poll_error(
                db, agency_id, f"unexpected {type(exc).__name__}: {exc}", self.hub.clock.now()
            )
            metrics.POLLS.labels(agency_id, "error").inc()
            return None
        lease = self.hub.settings.poll_lease_seconds
        stats = inbound.apply_poll(
            db,
            mapping,
            result,
            self.hub.clock.now(),
            self.worker_id,
            alerts,
            renew=lambda: inbound.lease_poll(
                db, agency_id, self.worker_id, self.hub.clock.now(), lease
            ),
        )
        metrics.POLLS.labels(agency_id, "ok").inc()
        for outcome, count in stats.counts.items():
            metrics.STATUS_UPDATES.labels(agency_id, outcome).inc(count)
        if result.updates or result.problems:
            log.info("poll %s: %s", agency_id, stats.counts)
        return stats

    def _feed_trouble(
        self, agency_id: str, adapter: Any, cursor: str | None, result: PollResult
    ) -> inbound.FeedAlert | None:
        """Why this poll's answer cannot be trusted to continue from, or None: the feed went
        backwards (the adapter says so from its cursor format), or it stays silent while lines
        wait past their acknowledgement date (each such situation once)."""
        comparable = cursor is not None and result.cursor is not None
        if comparable and adapter.cursor_behind(cursor or "", result.cursor or ""):
            return inbound.feed_went_back(cursor or "", result.cursor)
        if result.updates:
            return None
        late = inbound.late_unacknowledged(self.hub.db, agency_id, self.hub.clock.now())
        if not late:
            return None
        alert = inbound.feed_silent(cursor, late)
        return alert if inbound.alert_is_new(self.hub.db, agency_id, alert) else None

    def _reread(self, adapter: Any, items: list[OpenItem], first: PollResult) -> PollResult:
        """Re-synchronise: the whole feed again from an empty cursor (an adapter that polls per
        open case reads each again). Duplicates of what was applied are recognised as such.
        What the first answer already carried (problems, refusals) is kept."""
        again = adapter.poll(None, items)
        return PollResult(
            (*first.updates, *again.updates),
            again.cursor,
            (*first.problems, *again.problems),
            (*first.refusals, *again.refusals),
        )

    # ------------------------------------------------------------------------------ housekeeping

    def refer_not_competent(self) -> int:
        """Lines an agency is not competent for go on to the competent agency."""
        from hub import referral

        done = referral.refer_not_competent(
            self.hub.db,
            router=self.hub.router,
            directory=self.hub.directory,
            now=self.hub.clock.now(),
        )
        for r in done:
            log.info(
                "referred %s from %s to %s",
                r.case_reference,
                r.from_agency,
                r.to_agency or "(operators)",
            )
        return len(done)

    def send_notifications(self) -> int:
        """Mail consumers what changed (notifications written with the change)."""
        from hub import notify

        directory = self.hub.directory

        def name(agency_id: str, language: str) -> NameForms:
            if agency_id in directory:
                return directory[agency_id].forms(language)
            return NameForms(*(agency_id,) * 7)

        sent = notify.send_due(
            self.hub.db, self.hub.settings.mail, self.hub.clock.now(), names=name
        )
        if sent:
            log.info("mailed %d notification(s) to consumers", sent)
        return sent

    def watch_slas(self) -> int:
        """Mark lines whose answer (or acknowledgement) is late as past due."""
        from hub import lifecycle

        with self.hub.db.session() as s:
            n = lifecycle.mark_past_due(s, self.hub.clock.now())
        if n:
            log.info("%d line(s) went past due", n)
        return n

    def checkpoint_evidence(self) -> int:
        """Sign an evidence checkpoint when enough entries wait or the last one is old."""
        from datetime import timedelta

        from hub import evidence

        settings, now = self.hub.settings, self.hub.clock.now()
        every = timedelta(seconds=settings.checkpoint_seconds)
        if not evidence.checkpoint_due(
            self.hub.db, now, every=every, entries=settings.checkpoint_entries
        ):
            return 0
        cp = evidence.checkpoint(self.hub.db, evidence.KeyStore.from_settings(settings), now)
        if cp is None:
            return 0
        log.info("evidence checkpoint: %d entries, root %s, key %s", cp.size, cp.root, cp.key_id)
        return cp.size

    def erase_past_retention(self) -> int:
        """Erase the personal data of cases past their retention period (hub/gdpr.py)."""
        from hub import gdpr

        done = gdpr.housekeeping(self.hub.db, self.hub.clock.now())
        if done:
            log.info("erased the personal data of %d case(s) past retention", len(done))
        return len(done)

    def refresh_statistics(self) -> int:
        """The public statistics' daily rollups, the open data files (once a day), and market
        signals: a trader over the spike rule raises the inspection's alert (hub/signals.py)."""
        from hub import opendata, signals, statistics

        hub, now = self.hub, self.hub.clock.now()
        run = statistics.rollup(hub.db, now)
        log.info("statistics: %d rollup rows for %s..%s", run.rows, run.first, run.last)
        if opendata.due(hub.settings.var_dir, now):
            export = opendata.write(hub.db, opendata.directory_of(hub.settings.var_dir), now)
            log.info("open data: %d rows (%d left out)", len(export.rows), export.suppressed)
        raised = signals.raise_alerts(hub.db, now, hub.settings.inspection_alerts_to)
        if raised:
            log.info("market signals: %d alert(s) for %s", len(raised), ", ".join(raised))
        return run.rows

    def send_alerts(self) -> int:
        """Mail the inspection the market-signal alerts raised (retried until sent)."""
        from hub import signals

        sent = signals.send_alerts(self.hub.db, self.hub.settings.mail, self.hub.clock.now())
        if sent:
            log.info("mailed %d market-signal alert(s) to the inspection", sent)
        return sent

    # ------------------------------------------------------------------------------------ running

    def poll_interval(self, mapping: AgencyMapping) -> float:
        if self.hub.settings.poll_seconds:
            return self.hub.settings.poll_seconds
        return mapping.poll_every.seconds if mapping.poll_every else 300.0

    def build_scheduler(self) -> BlockingScheduler:
        agencies = self.hub.directory.agencies
        scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=2 * len(agencies) + 2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        now = self.hub.clock.now()
        # Dispatch is not a job: `run` starts its loop, woken by new deliveries (scheduler/wakeup.py).
        scheduler.add_job(
            self.heartbeat,
            "interval",
            seconds=max(0.5, self.hub.settings.lease_seconds / 3),
            id="heartbeat",
            name="renew the leases of running lanes; count this worker in the fair share",
            next_run_time=now,
        )
        for agency_id, mapping in agencies.items():
            if not self.can_poll(agency_id):
                log.info("%s is not polled: its adapter is configured without %r", agency_id, POLL)
                continue
            scheduler.add_job(
                self.poll_agency,
                "interval",
                args=[agency_id],
                seconds=self.poll_interval(mapping),
                id=f"poll:{agency_id}",
                name=f"poll {agency_id}",
                next_run_time=now,
            )
        every = self.hub.settings.housekeeping_seconds
        scheduler.add_job(
            self.refer_not_competent,
            "interval",
            seconds=every,
            id="referral",
            name="refer not-competent lines",
            next_run_time=now,
        )
        scheduler.add_job(
            self.send_notifications,
            "interval",
            seconds=max(1.0, self.hub.settings.dispatch_seconds),
            id="notify",
            name="mail consumers",
            next_run_time=now,
        )
        scheduler.add_job(
            self.watch_slas,
            "interval",
            seconds=every,
            id="sla",
            name="mark past-due lines",
            next_run_time=now,
        )
        scheduler.add_job(
            self.checkpoint_evidence,
            "interval",
            seconds=every,
            id="evidence",
            name="sign evidence checkpoints",
            next_run_time=now,
        )
        scheduler.add_job(
            self.erase_past_retention,
            "interval",
            seconds=RETENTION_EVERY,
            id="retention",
            name="erase personal data past retention",
            next_run_time=now,
        )
        scheduler.add_job(
            self.refresh_statistics,
            "interval",
            seconds=self.hub.settings.stats_seconds,
            id="statistics",
            name="statistics rollups, open data, market signals",
            next_run_time=now,
        )
        scheduler.add_job(
            self.send_alerts,
            "interval",
            seconds=every,
            id="alerts",
            name="mail market-signal alerts",
            next_run_time=now,
        )
        return scheduler

    def run(self) -> None:
        """Run until SIGTERM or SIGINT; in-flight deliveries finish, leases of the rest expire."""
        self.scheduler = self.build_scheduler()
        port = self.hub.settings.worker_metrics_port
        if port:
            from prometheus_client import start_http_server

            start_http_server(int(port), addr="127.0.0.1")
            log.info("worker metrics on http://127.0.0.1:%s/metrics", port)

        def stop(signum, _frame):
            log.info("worker %s stopping (signal %s)", self.worker_id, signum)
            self._stop.set()
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("worker %s started: %d agencies", self.worker_id, len(self.hub.directory.ids()))
        dispatcher = threading.Thread(target=self.dispatch_loop, name="dispatch", daemon=True)
        dispatcher.start()
        try:
            self.scheduler.start()
        finally:
            self._stop.set()
            dispatcher.join(timeout=self.hub.settings.dispatch_seconds + 5)
            self._lane_pool.shutdown(wait=True)  # in-flight deliveries finish and are recorded
            for pool, _width in self._senders.values():
                pool.shutdown(wait=True)
            try:
                outbox.retire(self.hub.db, self.worker_id)
            except Exception:  # the database is gone: the beat simply grows old
                log.warning("worker %s could not sign off", self.worker_id)
            self.hub.directory.close()

    def dispatch_loop(self) -> None:
        """Start lanes for agencies with due deliveries, then wait until new deliveries are
        queued (PostgreSQL NOTIFY) or `dispatch_seconds` pass (retries fall due by the clock).
        While lanes drain, a wake-up only starts lanes for other agencies."""
        waker = Waker(self.hub.db.url, self._stop)
        try:
            while not self._stop.is_set():
                try:
                    self.dispatch_tick()
                except Exception:
                    log.exception("dispatch tick failed")
                waker.wait(self.hub.settings.dispatch_seconds)
        finally:
            waker.close()
