"""Commands: everything an operator or an agency's staff does to the hub, from the console or the
CLI alike.

Each command is one unit of work: the change and its evidence entry (hub/audit.py, with who
acted) are written in the same transaction, so there is never an action without its evidence nor
evidence of an action that did not happen. Callers say who acts (an operator's name, or the
signed-in agency account) and get a frozen result back, or a `CommandError` whose message says
what was wrong and what to do. The logic lives in the domain modules (control, outbox, referral,
inbound, accounts); this module decides the transaction and the evidence.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.base import AdapterError
from hub import accounts, agencyside, audit, control, inbound, outbox, referral
from hub.accounts import Account
from hub.agencyside import ActionResult, AgencyActor
from hub.attachments import AttachmentRefused, Upload, check_all
from hub.control import AgencyControl
from hub.models import Assignment, Delivery, DeliveryState, InboundProblem, UnmatchedUpdate
from hub.outbox import ResendResult
from hub.queries import load_case, referable
from hub.referral import Referred
from hub.services import Hub

__all__ = [
    "ActionResult",
    "AgencyActor",
    "AgencyControl",
    "AttachmentRefused",
    "CommandError",
    "ConnectionCheck",
    "NewAccount",
    "NotFound",
    "Referred",
    "Refused",
    "ResendResult",
    "SignIn",
    "StaffUpdate",
    "Upload",
    "check_all",
]


class CommandError(ValueError):
    """The command was not carried out; the message says why and what to do instead."""


class NotFound(CommandError, LookupError):
    """The command names something that does not exist (or that the actor may not see)."""


class Refused(CommandError):
    """The command cannot be done as asked; nothing was changed."""


def _operator(name: str) -> str:
    return f"operator:{name}"[:32]  # the evidence log's actor column


def _staff(account: Account) -> str:
    return f"{account.role}:{account.name}"[:32]


@contextmanager
def _unit_of_work(hub: Hub) -> Iterator[Session]:
    """One transaction: commits when the block ends, rolls everything back on any error."""
    with hub.db.session() as s:
        yield s


def _evidence(
    s: Session,
    at: datetime,
    actor: str,
    action: str,
    *,
    agency_id: str | None = None,
    case_id: int | None = None,
    data: Mapping[str, Any] | None = None,
) -> None:
    audit.record(
        s,
        at=at,
        actor=actor,
        action=action,
        case_id=case_id,
        agency_id=agency_id,
        data=dict(data or {}),
    )


def _known_agency(hub: Hub, agency_id: str) -> None:
    if agency_id not in hub.directory:
        raise NotFound(f"no agency {agency_id!r}; known: {', '.join(hub.directory.ids())}")


# ------------------------------------------------------------------------------------ agencies


def pause_agency(hub: Hub, agency_id: str, *, operator: str, reason: str) -> AgencyControl:
    """Stop delivering to an agency: its cases wait, burn no attempts, nothing is lost."""
    _known_agency(hub, agency_id)
    reason = reason.strip() or "paused by an operator"
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        state = control.pause(s, agency_id, by=operator, reason=reason, now=now)
        _evidence(
            s,
            now,
            _operator(operator),
            "agency.paused",
            agency_id=agency_id,
            data={"reason": reason},
        )
        return control.view(state)


def resume_agency(hub: Hub, agency_id: str, *, operator: str) -> AgencyControl:
    """Deliver to the agency again, with a fresh start (its circuit breaker closed)."""
    _known_agency(hub, agency_id)
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        state = control.resume(s, agency_id, now=now)
        _evidence(s, now, _operator(operator), "agency.resumed", agency_id=agency_id)
        return control.view(state)


@dataclass(frozen=True)
class ConnectionCheck:
    agency_id: str
    kind: str
    ok: bool
    latency_ms: float | None
    message: str


def check_agency(hub: Hub, agency_id: str, *, operator: str | None = None) -> ConnectionCheck:
    """Test the connection to the agency's system ("Test" in the console, `agencies check`).
    It changes nothing in the hub; pressed in the console (`operator` given), the press and its
    answer are kept in the evidence log like every back-office action."""
    result = _check_agency(hub, agency_id)
    if operator is not None:
        now = hub.clock.now()
        with _unit_of_work(hub) as s:
            _evidence(
                s,
                now,
                _operator(operator),
                "agency.checked",
                agency_id=agency_id,
                data={"ok": result.ok, "message": result.message[:500]},
            )
    return result


def _check_agency(hub: Hub, agency_id: str) -> ConnectionCheck:
    _known_agency(hub, agency_id)
    mapping = hub.directory[agency_id]
    if not mapping.connected:
        return ConnectionCheck(
            agency_id,
            "referral",
            True,
            None,
            "a referral body: not connected, consumers are sent to "
            f"{mapping.referral.get('url', 'its site')}; nothing to test",
        )
    kind = mapping.adapter_kind
    try:
        health = hub.directory.adapter(agency_id).check()
    except AdapterError as exc:
        return ConnectionCheck(agency_id, kind, False, None, exc.detail)
    return ConnectionCheck(agency_id, kind, health.ok, health.latency_ms, health.message)


# ---------------------------------------------------------------------------------- deliveries


def resend_dead_letters(
    hub: Hub,
    *,
    operator: str,
    delivery_ids: list[int] | None = None,
    agency_id: str | None = None,
) -> ResendResult:
    """Put dead letters (by id, all of an agency's, or those ids of that agency) back in the queue with their original
    idempotency key and payload; two operators resending the same letter deliver it once. The
    outbox writes each resend's timeline entry and evidence in the resend's transaction."""
    if not delivery_ids and not agency_id:
        raise Refused("name the dead letters to resend, or an agency")
    if agency_id:
        _known_agency(hub, agency_id)
    return outbox.resend(
        hub.db,
        now=hub.clock.now(),
        operator=operator,
        delivery_ids=list(delivery_ids) if delivery_ids else None,
        agency_id=agency_id,
    )


def retry_now(hub: Hub, delivery_id: int, *, operator: str) -> int:
    """Bring a delivery waiting for its next retry forward to now (after the agency says it is
    back, say). Same idempotency key, no attempt added. Returns the delivery id."""
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        row = s.execute(
            select(Delivery.state, Delivery.agency_id, Assignment.case_id)
            .join(Assignment, Assignment.id == Delivery.assignment_id)
            .where(Delivery.id == delivery_id)
        ).first()
        if row is None:
            raise NotFound(f"no delivery {delivery_id}")
        state, agency_id, case_id = row
        moved = s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.RETRY)
            .values(next_attempt_at=now, updated_at=now)
        ).rowcount
        if not moved:
            raise Refused(
                f"delivery {delivery_id} is {state}, not waiting for a retry"
                + ("; resend it as a dead letter" if state == DeliveryState.DEAD else "")
            )
        _evidence(
            s,
            now,
            _operator(operator),
            "delivery.retry_now",
            agency_id=agency_id,
            case_id=case_id,
            data={"delivery": delivery_id},
        )
    return delivery_id


# --------------------------------------------------------------------------------------- cases


def refer_case(
    hub: Hub,
    reference: str,
    *,
    operator: str,
    from_line: int | None = None,
    from_agency: str | None = None,
    to_agency: str | None = None,
    reason: str | None = None,
) -> Referred:
    """Refer a case's line (`from_line`, or its referable line at `from_agency`) to `to_agency`
    or to the next competent agency routing finds; with neither line nor agency named, route the
    case to a new agency. The referral writes its timeline, mail and evidence in one
    transaction."""
    if to_agency is not None:
        _known_agency(hub, to_agency)
    with hub.db.session(read_only=True) as s:
        case = load_case(s, reference)
        if case is None:
            raise NotFound(f"no case {reference!r}")
        case_reference = case.reference
        lines = [(a.id, a.agency_id, a.status) for a in case.assignments]
    assignment_id = None
    if from_line is not None:
        if from_line not in {line_id for line_id, _, _ in lines}:
            raise NotFound(f"{case_reference} has no line #{from_line}")
        assignment_id = from_line
    elif from_agency is not None:
        open_lines = [
            i for i, agency, status in lines if agency == from_agency and referable(status)
        ]
        if not open_lines:
            raise Refused(f"{case_reference} has no open line at {from_agency}")
        assignment_id = open_lines[-1]
    try:
        return referral.refer(
            hub.db,
            router=hub.router,
            directory=hub.directory,
            now=hub.clock.now(),
            actor=_operator(operator),
            assignment_id=assignment_id,
            case_reference=case_reference,
            to_agency=to_agency,
            reason=(reason or "").strip() or None,
        )
    except referral.ReferralError as exc:
        raise Refused(str(exc)) from None


@dataclass(frozen=True)
class StaffUpdate:
    reference: str
    code: str
    applied: bool  # False: kept on the timeline but not applied (stale, duplicate, ...)
    outcome: str


def staff_actor(staff: Account) -> AgencyActor:
    """An agency's staff member as the actor of the agency's actions."""
    if staff.agency_id is None:
        raise Refused("only an agency's staff act for their agency")
    return AgencyActor(staff.agency_id, _staff(staff))


# The agency's actions (hub/agencyside.py), as the hosted workspace offers them.
AGENCY_ACTIONS = {
    "acknowledge": agencyside.acknowledge,
    "status": agencyside.set_status,
    "message": agencyside.post_message,
    "information": agencyside.request_information,
    "not_competent": agencyside.not_competent,
    "document": agencyside.add_document,
}


def agency_action(
    hub: Hub, staff: Account, action: str, reference: str, *args: Any, **kwargs: Any
) -> ActionResult:
    """One of the agency's actions, done by its staff in the workspace: the same as the agency
    API's, through the inbound path of polled updates, with the account on the evidence log."""
    actor = staff_actor(staff)
    try:
        return AGENCY_ACTIONS[action](hub, actor, reference, *args, **kwargs)
    except agencyside.NotFound:
        raise NotFound(f"no case {reference!r} at {actor.agency_id}") from None
    except agencyside.Invalid as exc:
        raise Refused(f"{exc.detail} {exc.fix}") from None


def record_staff_status(
    hub: Hub, staff: Account, reference: str, code: str, message: str | None = None
) -> StaffUpdate:
    """An agency's staff record a status in their agency's own codes. It goes through the same
    rules as a polled status (a "not competent" code is then referred by the hub)."""
    done = agency_action(hub, staff, "status", reference, code, message=message)
    return StaffUpdate(done.reference, code, done.outcome == inbound.APPLIED, done.outcome)


# ------------------------------------------------------------------------------------- inbound


def resolve_problem(hub: Hub, problem_id: int, *, operator: str) -> int:
    """Mark an unreadable inbound item as handled."""
    return _resolve(hub, InboundProblem, problem_id, operator, "problem.resolved", "problem")


def resolve_unmatched(hub: Hub, update_id: int, *, operator: str) -> int:
    """Mark an agency status that matched no case as handled."""
    return _resolve(hub, UnmatchedUpdate, update_id, operator, "unmatched.resolved", "update")


def _resolve(hub: Hub, model, item_id: int, operator: str, action: str, key: str) -> int:
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        row = s.get(model, item_id)
        if row is None:
            raise NotFound(f"no {key} {item_id}")
        row.resolved_at = now
        _evidence(s, now, _operator(operator), action, agency_id=row.agency_id, data={key: item_id})
    return item_id


# ---------------------------------------------------------------------------------------- users


@dataclass(frozen=True)
class NewAccount:
    name: str
    role: str
    agency_id: str | None
    password: str  # shown once: only its hash is stored


def add_user(
    hub: Hub,
    name: str,
    role: str,
    *,
    operator: str,
    agency_id: str | None = None,
    password: str | None = None,
    email: str | None = None,
) -> NewAccount:
    """Create a back-office account; the password is generated unless given. With an `email`,
    its holder can ask for a reset link on the sign-in page."""
    if agency_id:
        _known_agency(hub, agency_id)
    now = hub.clock.now()
    try:
        with _unit_of_work(hub) as s:
            password = accounts.create(s, name, role, agency_id, now, password)
            if email:
                accounts.set_email(s, name, email)
            _evidence(
                s,
                now,
                _operator(operator),
                "user.added",
                agency_id=agency_id,
                data={"name": name, "role": role},
            )
    except accounts.AccountError as exc:
        raise Refused(str(exc)) from None
    return NewAccount(name, role, agency_id, password)


def sign_out(hub: Hub, user_id: int, *, name: str | None = None) -> None:
    """End every session of the account: a copy of its cookie no longer opens the back office."""
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        accounts.end_sessions(s, user_id)
        if name is not None:
            _evidence(s, now, f"user:{name}"[:32], "user.signed_out")


@dataclass(frozen=True)
class SignIn:
    """What a sign-in came to: `account` when it succeeded; `needs_code` when the password was
    right but the account's second factor was missing or wrong (the page asks for it)."""

    account: Account | None
    needs_code: bool = False


def sign_in(hub: Hub, name: str, password: str, code: str = "", *, address: str = "") -> SignIn:
    """Password, then the TOTP code if the account has one; every attempt is in the evidence
    log (the name as typed, never the password or code), failed ones with their reason."""
    now = hub.clock.now()
    account = accounts.authenticate(hub.db, name, password)
    outcome, needs_code = "ok", False
    with _unit_of_work(hub) as s:
        if account is None:
            outcome = "wrong name or password"
        elif account.totp and not accounts.check_totp(s, account.id, code, now):
            outcome, needs_code = ("code refused" if code.strip() else "code missing"), True
        _evidence(
            s,
            now,
            f"user:{name}"[:32],
            "user.signed_in" if outcome == "ok" else "user.sign_in_refused",
            agency_id=account.agency_id if account else None,
            data={"address": address, **({} if outcome == "ok" else {"reason": outcome})},
        )
    if outcome != "ok":
        return SignIn(None, needs_code)
    return SignIn(account)


def reset_link(hub: Hub, token: str) -> str:
    """Where a reset link points: the back office under the front desk's public address."""
    return f"{hub.settings.mail.public_url.rstrip('/')}/admin/reset/{token}"


def request_password_reset(hub: Hub, name: str, *, by: str | None = None) -> bool:
    """Mail a one-time link (valid 30 minutes) to the account's address. The caller answers the
    same whether or not the account exists; the return value (True when a mail went out) is for
    the operator's console and the CLI. `by`: the operator who triggered it, else the user."""
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        reset = accounts.start_reset(s, name, now)
        _evidence(
            s,
            now,
            _operator(by) if by else f"user:{name}"[:32],
            "user.reset_requested",
            data={"name": name, "mailed": reset is not None},
        )
    if reset is None:
        return False
    from hub import notify

    try:
        notify.send_account_mail(
            hub.settings.mail,
            reset.email,
            "reset",
            reset.language or "en",
            {"name": reset.name, "link": reset_link(hub, reset.token), "minutes": 30},
            now,
        )
    except OSError as exc:  # smtplib's errors are OSErrors too
        with _unit_of_work(hub) as s:
            _evidence(
                s,
                now,
                "hub",
                "user.reset_mail_failed",
                data={"name": name, "error": str(exc)[:300]},
            )
        return False
    return True


def password_reset_valid(hub: Hub, token: str) -> bool:
    with hub.db.session(read_only=True) as s:
        return accounts.reset_is_valid(s, token, hub.clock.now())


def reset_password(hub: Hub, token: str, password: str) -> str:
    """Choose a new password with a reset link; returns the account's name. The link is spent,
    the account's other links too, and every session of the account ends."""
    now = hub.clock.now()
    try:
        with _unit_of_work(hub) as s:
            user = accounts.finish_reset(s, token, password, now)
            if user is None:
                raise Refused("this link is unknown, used or expired; ask for a new one")
            _evidence(s, now, f"user:{user.name}"[:32], "user.password_reset")
            return user.name
    except accounts.AccountError as exc:
        raise Refused(str(exc)) from None


def enrol_totp(hub: Hub, account: Account, secret: str, code: str) -> None:
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        if not accounts.enrol_totp(s, account.id, secret, code, now):
            raise Refused("that code does not match; type the code your app shows now")
        _evidence(s, now, _staff(account), "user.totp_enabled")


def drop_totp(hub: Hub, account: Account, code: str) -> None:
    """Switch the second factor off: needs a current code, so a borrowed session cannot."""
    now = hub.clock.now()
    with _unit_of_work(hub) as s:
        if not accounts.check_totp(s, account.id, code, now):
            raise Refused("that code does not match; type the code your app shows now")
        accounts.drop_totp(s, account.id)
        _evidence(s, now, _staff(account), "user.totp_disabled")


def new_totp_secret() -> str:
    return accounts.new_totp_secret()


def totp_uri(secret: str, name: str) -> str:
    return accounts.totp_uri(secret, name)


def set_language(hub: Hub, account: Account, language: str) -> None:
    with _unit_of_work(hub) as s:
        accounts.set_language(s, account.id, language)


def disable_user(hub: Hub, name: str, *, operator: str) -> str:
    """Disable an account: it can no longer sign in, and its sessions end at their next
    request."""
    now = hub.clock.now()
    try:
        with _unit_of_work(hub) as s:
            accounts.deactivate(s, name)
            _evidence(s, now, _operator(operator), "user.disabled", data={"name": name})
    except accounts.AccountError as exc:
        raise NotFound(str(exc)) from None
    return name


def erase_personal_data(hub: Hub, reference: str, *, operator: str) -> Any:
    """Erase a case's personal data (a consumer's request, or the front desk's decision); the
    erasure and the requests it settles are on the evidence log. Returns hub.gdpr.Erased."""
    from hub import gdpr

    try:
        return gdpr.erase_case(hub.db, reference, hub.clock.now(), actor=_operator(operator))
    except gdpr.PrivacyError as exc:
        raise CommandError(str(exc)) from None
