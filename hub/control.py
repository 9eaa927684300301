"""Per-agency delivery control shared by all workers: circuit breaker and manual pause.

The breaker opens after a run of transient failures, so a down agency stops burning attempts and
worker time; after a pause one probe delivery goes out (half-open); success closes it. An agency
that answers at all, even with a refusal, is reachable: that closes the breaker too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hub.db import Database, insert_if_missing
from hub.models import AgencyState
from mappings.engine import BreakerPolicy

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class AgencyControl:
    """What operators see of an agency's delivery control."""

    agency_id: str
    breaker: str
    consecutive_failures: int
    probe_at: datetime | None
    last_error: str | None
    paused: bool
    paused_by: str | None
    paused_reason: str | None


def ensure(s: Session, agency_id: str) -> None:
    """Create the agency's row if missing, without racing another worker doing the same."""
    insert_if_missing(
        s,
        AgencyState,
        "agency_id",
        agency_id=agency_id,
        breaker=CLOSED,
        consecutive_failures=0,
        paused=False,
    )


def lock(s: Session, agency_id: str) -> AgencyState:
    ensure(s, agency_id)
    return s.scalars(
        select(AgencyState).where(AgencyState.agency_id == agency_id).with_for_update()
    ).one()


def admit(state: AgencyState, now: datetime, lease_seconds: float) -> int | None:
    """How many deliveries the breaker lets through now: None = as many as room allows, 0 = none,
    1 = a single probe. Moves open -> half_open when the pause is over."""
    if state.paused:
        return 0
    if state.breaker == OPEN:
        if state.probe_at is not None and now < state.probe_at:
            return 0
        state.breaker = HALF_OPEN
        state.probe_until = now + timedelta(seconds=lease_seconds)
        state.updated_at = now
        return 1
    if state.breaker == HALF_OPEN:
        if state.probe_until is not None and now < state.probe_until:
            return 0  # a probe is in flight
        state.probe_until = now + timedelta(seconds=lease_seconds)  # the prober died; probe again
        state.updated_at = now
        return 1
    return None


def reachable(s: Session, agency_id: str, now: datetime) -> None:
    """The agency answered: close the breaker. Touches the row only when something changes, so the
    common case takes no lock."""
    s.execute(
        update(AgencyState)
        .where(
            AgencyState.agency_id == agency_id,
            or_(AgencyState.breaker != CLOSED, AgencyState.consecutive_failures != 0),
        )
        .values(
            breaker=CLOSED,
            consecutive_failures=0,
            probe_at=None,
            probe_until=None,
            opened_at=None,
            updated_at=now,
        )
    )


def unreachable(
    s: Session, agency_id: str, now: datetime, policy: BreakerPolicy, error: str
) -> bool:
    """Count a transient failure; returns True when this failure opened the breaker."""
    state = lock(s, agency_id)
    state.consecutive_failures += 1
    state.last_error = error
    state.updated_at = now
    if state.breaker == HALF_OPEN or state.consecutive_failures >= policy.failures:
        opened = state.breaker != OPEN
        if opened:
            state.breaker, state.opened_at = OPEN, now
        state.probe_at = now + timedelta(seconds=policy.pause_seconds)
        state.probe_until = None
        return opened
    return False


def pause(s: Session, agency_id: str, *, by: str, reason: str, now: datetime) -> AgencyState:
    """Stop claims for the agency, in the caller's transaction (hub.operations writes the
    evidence in the same one)."""
    state = lock(s, agency_id)
    state.paused, state.paused_by, state.paused_reason, state.updated_at = True, by, reason, now
    return state


def resume(s: Session, agency_id: str, *, now: datetime) -> AgencyState:
    """Lift a manual pause and give the agency a fresh start (breaker closed), in the caller's
    transaction."""
    state = lock(s, agency_id)
    state.paused, state.paused_by, state.paused_reason = False, None, None
    state.breaker, state.consecutive_failures = CLOSED, 0
    state.probe_at = state.probe_until = state.opened_at = None
    state.updated_at = now
    return state


def view(row: AgencyState) -> AgencyControl:
    return AgencyControl(
        row.agency_id,
        row.breaker,
        row.consecutive_failures,
        row.probe_at,
        row.last_error,
        row.paused,
        row.paused_by,
        row.paused_reason,
    )


def states(db: Database) -> dict[str, AgencyControl]:
    with db.session(read_only=True) as s:
        return {row.agency_id: view(row) for row in s.scalars(select(AgencyState))}
