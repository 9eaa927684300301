"""Market signals for the Economic Inspection: cases grouped by trader, trends and spikes.

A trader is known by what consumers typed, which varies. Three keys are taken from each case's
trader: the enterprise number (`kbo:0123456789`), the website's domain without `www.`
(`web:shop.example`), and the name folded to lower-case ASCII without punctuation and legal
form (`name:acme`). Cases that share any key are one trader (union-find), so "ACME NV",
"Acme nv." and "acme.example" with the same number end up together.

The spike rule (per trader and problem area), checked by housekeeping:
    this week   = cases filed in the 7 days before now
    trailing    = the 8 weeks before that; mean = their cases / 8
    spike when  this week >= SPIKE_MIN (5)  and  this week >= SPIKE_FACTOR (3) x mean
A trader with a spike in any area raises one alert per ISO week: a row in `trader_alerts`
(unique per trader key and week), an entry in the evidence log (`market_signal.alert`), and a
mail to the inspection (`Settings.inspection_alerts_to`) sent and retried by housekeeping.
"""

from __future__ import annotations

import re
import smtplib
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

from sqlalchemy import select

from hub import audit
from hub.config import MailSettings
from hub.db import Database
from hub.models import Case, Party, TraderAlert
from hub.opendata import LEGAL_FORMS
from hub.statistics import area_of

SPIKE_MIN = 5
SPIKE_FACTOR = 3.0
TRAILING_WEEKS = 8
WINDOW_WEEKS = 26  # the inspector's list covers cases of the last half year
INSPECTION = "economic-inspection"
MAX_ATTEMPTS = 8


def normalise_name(name: str | None) -> str | None:
    if not name:
        return None
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = LEGAL_FORMS.sub(" ", text)
    text = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return text or None


def domain_of(website: str | None) -> str | None:
    if not website or not website.strip():
        return None
    raw = website.strip()
    if "://" not in raw:
        raw = "http://" + raw
    try:
        host = (urlsplit(raw).hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    host = host.removeprefix("www.")
    return host if "." in host else None


def keys_of(name: str | None, number: str | None, website: str | None) -> list[str]:
    keys = []
    digits = re.sub(r"\D", "", number or "")
    if len(digits) == 10:
        keys.append(f"kbo:{digits}")
    domain = domain_of(website)
    if domain:
        keys.append(f"web:{domain}")
    folded = normalise_name(name)
    if folded:
        keys.append(f"name:{folded}")
    return keys


def _rank(key: str) -> tuple[int, str]:
    return ({"kbo": 0, "web": 1, "name": 2}[key.split(":", 1)[0]], key)


@dataclass(frozen=True)
class TraderCase:
    reference: str
    kind: str
    area: str
    created_at: datetime
    name: str


@dataclass(frozen=True)
class Trader:
    key: str  # the best key of the group: enterprise number, else domain, else name
    name: str  # the name consumers typed most often
    names: tuple[str, ...]
    numbers: tuple[str, ...]
    domains: tuple[str, ...]
    cases: tuple[TraderCase, ...]  # newest first
    this_week: dict[str, int]  # area -> cases in the last 7 days
    trailing_mean: dict[str, float]  # area -> mean per week over the 8 weeks before
    spikes: tuple[str, ...]  # areas whose this week crosses the rule

    @property
    def total(self) -> int:
        return len(self.cases)

    @property
    def kinds(self) -> dict[str, int]:
        return dict(Counter(c.kind for c in self.cases))

    def weekly(self, now: datetime, weeks: int = TRAILING_WEEKS + 1) -> list[int]:
        """Cases per week, oldest first, the last being the 7 days before now."""
        out = [0] * weeks
        for c in self.cases:
            age = (now - c.created_at).days // 7
            if 0 <= age < weeks:
                out[weeks - 1 - age] += 1
        return out


def is_spike(this_week: int, trailing_mean: float) -> bool:
    return this_week >= SPIKE_MIN and this_week >= SPIKE_FACTOR * trailing_mean


class _Groups:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, k: str) -> str:
        self.parent.setdefault(k, k)
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb), key=_rank)
            self.parent[hi] = lo


def traders(db: Database, now: datetime, *, weeks: int = WINDOW_WEEKS) -> list[Trader]:
    """Every trader with cases in the last `weeks` weeks, most cases this week first."""
    since = now - timedelta(weeks=weeks)
    with db.session(read_only=True) as s:
        rows = s.execute(
            select(
                Case.reference,
                Case.kind,
                Case.domain,
                Case.created_at,
                Party.name,
                Party.enterprise_number,
                Party.website,
            )
            .join(Party, (Party.case_id == Case.id) & (Party.role == "trader"))
            .where(Case.created_at >= since, Case.created_at <= now)
        ).all()
    groups = _Groups()
    keyed = []
    for ref, kind, domain, created, name, number, website in rows:
        keys = keys_of(name, number, website)
        if not keys:
            continue
        for k in keys[1:]:
            groups.union(keys[0], k)
        groups.find(keys[0])
        keyed.append((keys, TraderCase(ref, kind, area_of(domain), created, name or "")))
    members: dict[str, list[tuple[list[str], TraderCase]]] = defaultdict(list)
    for keys, case in keyed:
        members[groups.find(keys[0])].append((keys, case))
    week_ago = now - timedelta(days=7)
    trailing_from = week_ago - timedelta(weeks=TRAILING_WEEKS)
    out = []
    for root, items in members.items():
        cases = sorted((c for _k, c in items), key=lambda c: c.created_at, reverse=True)
        all_keys = {k for ks, _c in items for k in ks}
        this_week: Counter[str] = Counter()
        trailing: Counter[str] = Counter()
        for c in cases:
            if c.created_at > week_ago:
                this_week[c.area] += 1
            elif c.created_at > trailing_from:
                trailing[c.area] += 1
        means = {a: trailing[a] / TRAILING_WEEKS for a in set(this_week) | set(trailing)}
        spikes = tuple(sorted(a for a, n in this_week.items() if is_spike(n, means.get(a, 0.0))))
        out.append(
            Trader(
                key=root,
                name=Counter(c.name for c in cases).most_common(1)[0][0],
                names=tuple(sorted({c.name for c in cases})),
                numbers=tuple(sorted(k[4:] for k in all_keys if k.startswith("kbo:"))),
                domains=tuple(sorted(k[4:] for k in all_keys if k.startswith("web:"))),
                cases=tuple(cases),
                this_week=dict(this_week),
                trailing_mean=means,
                spikes=spikes,
            )
        )
    out.sort(key=lambda t: (-len(t.spikes), -sum(t.this_week.values()), -t.total, t.key))
    return out


def trader_of(db: Database, now: datetime, reference: str) -> Trader | None:
    return next(
        (t for t in traders(db, now) if any(c.reference == reference for c in t.cases)), None
    )


def iso_week(now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


def raise_alerts(db: Database, now: datetime, to_address: str) -> list[str]:
    """An alert for each trader over the spike rule that has none this ISO week; returns
    their keys. Recorded in the evidence log in the same transaction."""
    week = iso_week(now)
    raised = []
    spiking = [t for t in traders(db, now, weeks=TRAILING_WEEKS + 2) if t.spikes]
    if not spiking:
        return raised
    with db.session() as s:
        done = set(
            s.scalars(
                select(TraderAlert.trader_key).where(
                    TraderAlert.week == week,
                    TraderAlert.trader_key.in_([t.key for t in spiking]),
                )
            )
        )
        for t in spiking:
            if t.key in done:
                continue
            area = max(t.spikes, key=lambda a: t.this_week[a])
            s.add(
                TraderAlert(
                    trader_key=t.key,
                    trader_name=t.name[:200],
                    week=week,
                    area=area,
                    count=t.this_week[area],
                    trailing_mean=t.trailing_mean.get(area, 0.0),
                    to_address=to_address,
                    state="pending",
                    attempts=0,
                    created_at=now,
                )
            )
            audit.record(
                s,
                at=now,
                actor="hub",
                action="market_signal.alert",
                case_id=None,
                agency_id=INSPECTION,
                data={
                    "trader": t.key,
                    "week": week,
                    "area": area,
                    "this_week": t.this_week[area],
                    "trailing_mean": round(t.trailing_mean.get(area, 0.0), 3),
                    "rule": f">= {SPIKE_MIN} and >= {SPIKE_FACTOR:g} x mean of {TRAILING_WEEKS} weeks",
                },
            )
            raised.append(t.key)
    return raised


def _message(alert: TraderAlert, settings: MailSettings, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = alert.to_address
    msg["Subject"] = f"Marktsignaal / Signal de marché: {alert.trader_name} ({alert.week})"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="loket.example.be")
    msg["X-Loket-Signal"] = f"{alert.trader_key} {alert.week}"
    msg.set_content(
        f"Trader: {alert.trader_name}\nKey: {alert.trader_key}\nArea: {alert.area}\n"
        f"Cases in the last 7 days: {alert.count}\n"
        f"Mean per week over the {TRAILING_WEEKS} weeks before: {alert.trailing_mean:.2f}\n"
        f"Rule: at least {SPIKE_MIN} cases and at least {SPIKE_FACTOR:g} times the mean.\n\n"
        f"{settings.public_url.rstrip('/')}/admin/signals\n"
    )
    return msg


def send_alerts(db: Database, settings: MailSettings, now: datetime) -> int:
    """Mail pending alerts; a failure is retried at the next run, up to MAX_ATTEMPTS."""
    sent = 0
    with db.session() as s:
        pending = s.scalars(
            select(TraderAlert).where(TraderAlert.state == "pending").order_by(TraderAlert.id)
        ).all()
        for alert in pending:
            alert.attempts += 1
            try:
                with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
                    if settings.starttls:
                        import ssl

                        smtp.starttls(context=ssl.create_default_context())
                    if settings.username:
                        smtp.login(settings.username, settings.password or "")
                    smtp.send_message(_message(alert, settings, now))
            except (OSError, smtplib.SMTPException) as exc:
                alert.last_error = f"{type(exc).__name__}: {exc}"[:500]
                if alert.attempts >= MAX_ATTEMPTS:
                    alert.state = "failed"
                continue
            alert.state, alert.sent_at = "sent", now
            sent += 1
    return sent


@dataclass(frozen=True)
class AlertView:
    trader_key: str
    trader_name: str
    week: str
    area: str
    count: int
    trailing_mean: float
    state: str
    created_at: datetime
    sent_at: datetime | None


def alerts(db: Database, limit: int = 50) -> list[AlertView]:
    with db.session(read_only=True) as s:
        return [
            AlertView(
                a.trader_key,
                a.trader_name,
                a.week,
                a.area,
                a.count,
                a.trailing_mean,
                a.state,
                a.created_at,
                a.sent_at,
            )
            for a in s.scalars(select(TraderAlert).order_by(TraderAlert.id.desc()).limit(limit))
        ]
