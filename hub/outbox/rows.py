"""The outbox row itself: what every writer of a delivery stores (intake's bulk insert, a new
line after a referral, a consumer's message to an agency)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.models import DeliveryState

CASE, MESSAGE = "case", "message"  # what a delivery carries: the case itself, or a message
# The end of a message delivery's key when the message withdraws the case (hub.consumer).
WITHDRAWAL_SUFFIX = ".withdrawn"


def delivery_row(
    *,
    agency_id: str,
    idempotency_key: str,
    now: datetime,
    kind: str = CASE,
    message_id: int | None = None,
) -> dict[str, Any]:
    """The column values of a new delivery, due at once, but its assignment_id, which the
    caller attaches (intake inserts the lines and their deliveries in one statement)."""
    return {
        "kind": kind,
        "message_id": message_id,
        "agency_id": agency_id,
        "idempotency_key": idempotency_key,
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "resends": 0,
        "round_started_attempts": 0,
    }
