"""The outbox: claim due deliveries under a lease, record receipts, schedule retries, dead-letter.

- `claim`: lease due deliveries of one agency and hand back those never tried (`claim.py`);
- `complete`, `complete_many`, `fail`: record what an attempt came to (`record.py`);
- `dead_letters`, `resend`: what operators read and do about deliveries that gave up
  (`deadletters.py`);
- `delivery_row`: the one builder of a new outbox row (`rows.py`).

A delivery's state is a `DeliveryState`; its kind is `CASE` or `MESSAGE`.
"""

from hub.models import DeliveryState
from hub.outbox.claim import (
    Claimed,
    agencies_with_due,
    claim,
    counts_by_agency,
    documents_for,
    due_condition,
    heartbeat,
    release,
    retire,
)
from hub.outbox.deadletters import Attempt, DeadLetter, ResendResult, dead_letters, resend
from hub.outbox.record import Failed, complete, complete_many, fail, record_receipt
from hub.outbox.rows import CASE, MESSAGE, WITHDRAWAL_SUFFIX, delivery_row

__all__ = [
    "CASE",
    "MESSAGE",
    "WITHDRAWAL_SUFFIX",
    "Attempt",
    "Claimed",
    "DeadLetter",
    "DeliveryState",
    "Failed",
    "ResendResult",
    "agencies_with_due",
    "claim",
    "complete",
    "complete_many",
    "counts_by_agency",
    "dead_letters",
    "delivery_row",
    "documents_for",
    "due_condition",
    "fail",
    "heartbeat",
    "record_receipt",
    "release",
    "resend",
    "retire",
]
