"""The agency API's OAuth 2.0 clients and their tokens (client credentials grant).

One client per agency. Secrets and tokens are random (256 bits) and stored only as SHA-256
hashes: a database leak gives no usable credential, and a slow hash would add nothing to values
that cannot be guessed. A secret is shown once, when it is made. Rotation makes a new secret and
keeps the previous one valid for an overlap period (default one day), so the agency can roll its
systems over without a gap; revocation ends the client and every token it holds at once. Tokens
are short-lived (5 minutes by default) and checked against the hub's clock.

Every change is on the evidence log with who made it, in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from hub import audit
from hub.models import AgencyClient, AgencyToken
from hub.services import Hub

TOKEN_SECONDS = 300
OVERLAP = timedelta(days=1)


class ClientError(ValueError):
    """The command cannot be carried out; the message says why and what to do."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    agency_id: str
    client_id: str
    client_secret: str  # shown once
    previous_valid_until: datetime | None = None


@dataclass(frozen=True)
class ClientView:
    """A client as the token endpoint sees it (Authlib's ClientMixin, implemented on values)."""

    client_id: str
    agency_id: str
    secret_hash: str
    previous_secret_hash: str | None
    previous_expires_at: datetime | None
    now: datetime

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return "agency" if not scope or scope == "agency" else ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        given = digest(client_secret or "")
        if hmac.compare_digest(given, self.secret_hash):
            return True
        return bool(
            self.previous_secret_hash
            and self.previous_expires_at is not None
            and self.now < self.previous_expires_at
            and hmac.compare_digest(given, self.previous_secret_hash)
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass(frozen=True)
class TokenView:
    """A bearer token as the resource protector sees it (Authlib's TokenMixin)."""

    agency_id: str
    client_id: str
    scope: str
    expires_at: datetime
    revoked: bool
    now: datetime

    def check_client(self, client) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.expires_at - self.now).total_seconds()))

    def is_expired(self) -> bool:
        return self.now >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


def _known(hub: Hub, agency_id: str) -> None:
    if agency_id not in hub.directory:
        raise ClientError(f"no agency {agency_id!r}; known: {', '.join(hub.directory.ids())}")


def create(hub: Hub, agency_id: str, *, by: str) -> Credentials:
    """The agency's client; refused when it has one (rotate its secret instead)."""
    _known(hub, agency_id)
    now = hub.clock.now()
    secret = secrets.token_urlsafe(32)
    client_id = f"{agency_id}-{secrets.token_hex(4)}"
    with hub.db.session() as s:
        existing = s.scalars(
            select(AgencyClient).where(AgencyClient.agency_id == agency_id)
        ).first()
        if existing is not None and existing.revoked_at is None:
            raise ClientError(
                f"{agency_id} already has an API client ({existing.client_id}); "
                f"`loket agency-client rotate {agency_id}` gives it a new secret"
            )
        if existing is not None:  # revoked: a new client replaces it, under a new id
            s.delete(existing)
            s.flush()
        s.add(
            AgencyClient(
                agency_id=agency_id, client_id=client_id, secret_hash=digest(secret), created_at=now
            )
        )
        audit.record(
            s,
            at=now,
            actor=by[:32],
            action="agency_client.created",
            case_id=None,
            agency_id=agency_id,
            data={"client_id": client_id},
        )
    return Credentials(agency_id, client_id, secret)


def rotate(hub: Hub, agency_id: str, *, by: str, overlap: timedelta = OVERLAP) -> Credentials:
    """A new secret; the current one keeps working for `overlap`, then only the new one."""
    _known(hub, agency_id)
    now = hub.clock.now()
    secret = secrets.token_urlsafe(32)
    with hub.db.session() as s:
        client = s.scalars(
            select(AgencyClient)
            .where(AgencyClient.agency_id == agency_id, AgencyClient.revoked_at.is_(None))
            .with_for_update()
        ).first()
        if client is None:
            raise ClientError(
                f"{agency_id} has no API client; `loket agency-client create {agency_id}`"
            )
        client.previous_secret_hash = client.secret_hash
        client.previous_expires_at = now + overlap
        client.secret_hash = digest(secret)
        client.rotated_at = now
        audit.record(
            s,
            at=now,
            actor=by[:32],
            action="agency_client.rotated",
            case_id=None,
            agency_id=agency_id,
            data={"client_id": client.client_id, "overlap_seconds": int(overlap.total_seconds())},
        )
        return Credentials(agency_id, client.client_id, secret, client.previous_expires_at)


def revoke(hub: Hub, agency_id: str, *, by: str) -> str:
    """End the client and every token it was given, now. Returns the client id."""
    _known(hub, agency_id)
    now = hub.clock.now()
    with hub.db.session() as s:
        client = s.scalars(
            select(AgencyClient).where(
                AgencyClient.agency_id == agency_id, AgencyClient.revoked_at.is_(None)
            )
        ).first()
        if client is None:
            raise ClientError(f"{agency_id} has no active API client")
        client.revoked_at = now
        s.execute(
            update(AgencyToken)
            .where(AgencyToken.client_id == client.client_id, AgencyToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        audit.record(
            s,
            at=now,
            actor=by[:32],
            action="agency_client.revoked",
            case_id=None,
            agency_id=agency_id,
            data={"client_id": client.client_id},
        )
        return client.client_id


def client(hub: Hub, client_id: str) -> ClientView | None:
    """An active client by its id (None for an unknown or revoked one). An id no client can
    have (empty, too long, with a NUL, which PostgreSQL cannot even compare) is unknown."""
    if not client_id or len(client_id) > 64 or "\x00" in client_id:
        return None
    with hub.db.session(read_only=True) as s:
        row = s.scalars(
            select(AgencyClient).where(
                AgencyClient.client_id == client_id,
                AgencyClient.revoked_at.is_(None),
            )
        ).first()
        if row is None:
            return None
        return ClientView(
            row.client_id,
            row.agency_id,
            row.secret_hash,
            row.previous_secret_hash,
            row.previous_expires_at,
            hub.clock.now(),
        )


def save_token(hub: Hub, token: dict, client_view: ClientView) -> None:
    """Keep the hash of a token the token endpoint issued."""
    now = hub.clock.now()
    with hub.db.session() as s:
        s.add(
            AgencyToken(
                client_id=client_view.client_id,
                agency_id=client_view.agency_id,
                token_hash=digest(token["access_token"]),
                scope=token.get("scope") or "agency",
                issued_at=now,
                expires_at=now + timedelta(seconds=int(token.get("expires_in") or TOKEN_SECONDS)),
            )
        )


def token(hub: Hub, access_token: str) -> TokenView | None:
    """The token a bearer string names, or None (forged, or never issued)."""
    if not access_token or len(access_token) > 200:
        return None
    with hub.db.session(read_only=True) as s:
        row = s.execute(
            select(AgencyToken, AgencyClient.revoked_at)
            .outerjoin(AgencyClient, AgencyClient.client_id == AgencyToken.client_id)
            .where(AgencyToken.token_hash == digest(access_token))
        ).first()
        if row is None:
            return None
        t, client_revoked = row
        return TokenView(
            t.agency_id,
            t.client_id,
            t.scope,
            t.expires_at,
            t.revoked_at is not None or client_revoked is not None,
            hub.clock.now(),
        )
