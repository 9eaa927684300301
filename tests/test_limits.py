"""Limits on guessing and flooding (docs/security.md, "Limits"): every wrong tracking code
counts wherever it comes from, per address and per case; a guesser never locks the holder of the
right code out; the JSON API is limited per address and confirmation mails per recipient; the
client address comes from X-Forwarded-For only behind trusted proxies; the counters live in
memory or in Redis (LOKET_RATELIMIT_STORAGE), and every limit test runs on both.

The private code stays out of the general session cookie: only the case's path-scoped,
HttpOnly, SameSite=Strict cookies carry it."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from hub import ratelimits
from hub.config import ConfigError, Settings
from hub.models import Case, Notification
from hub.services import Hub
from tests.support.backoffice import token_of
from tests.support.cases import CASE
from tests.support.env import free_port, peer_missing
from tests.support.frontdesk import file_by_page, filed, text

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> str:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # not installed, not running, refused
        peer_missing(
            f"Redis not reachable at {REDIS_URL} ({exc}): start redis-server on 127.0.0.1:6379 "
            "to run the shared-store variant of the limit tests"
        )
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
def storage(request) -> str:
    return "memory://" if request.param == "memory" else _redis_or_skip()


def _app(hub: Hub, storage: str = "memory://", **settings):
    from loket.app import create_app

    app = create_app(replace(hub.settings, ratelimit_storage=storage, **settings), hub=hub)
    app.testing = True
    return app


@pytest.fixture
def app(hub, storage):
    return _app(hub, storage)


def _address() -> str:
    """A fresh client address per visitor: tests sharing one Redis never share a counter."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def visitor(app, address: str | None = None):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address or _address()
    return c


def _case_cookie(client, reference: str, code: str) -> None:
    client.set_cookie(f"loket_case_{reference}", code, path=f"/fr/track/{reference}")


# ------------------------------------------------------------------- the code's own cookie


def test_the_private_code_travels_only_in_the_case_cookies_never_in_the_session(client):
    app = client.application
    answer = file_by_page(client)
    assert answer.status_code == 303
    reference = answer.headers["Location"].rsplit("/", 1)[1]
    page = text(client.get(answer.headers["Location"]))
    assert f"/fr/track/{reference}?k=" in page  # the confirmation still shows the private link
    code = page.split(f"/fr/track/{reference}?k=", 1)[1].split('"', 1)[0]
    cookies = answer.headers.getlist("Set-Cookie")
    carrying = [c for c in cookies if code in c]
    assert carrying and all(c.startswith(f"loket_case_{reference}={code};") for c in carrying)
    paths = {c.split("Path=", 1)[1].split(";", 1)[0] for c in carrying}
    langs = ("nl", "fr", "de", "en")
    assert paths == {f"/{lang}/{page}/{reference}" for lang in langs for page in ("track", "filed")}
    # the confirmation, in another language from the switcher, still shows the link
    assert f"/nl/track/{reference}?k={code}" in text(client.get(f"/nl/filed/{reference}"))
    assert all("HttpOnly" in c and "SameSite=Strict" in c for c in carrying)
    [session_cookie] = [c for c in cookies if c.startswith(app.config["SESSION_COOKIE_NAME"])]
    value = session_cookie.split("=", 1)[1].split(";", 1)[0]
    held = app.session_interface.get_signing_serializer(app).loads(value)
    assert held["filed"]["reference"] == reference
    assert code not in json.dumps(held)
    # another visitor with the same session but without the case cookie sees no code
    other = app.test_client()
    assert other.get(f"/fr/filed/{reference}").status_code == 404


def test_the_link_sets_a_strict_secure_cookie_and_moves_on_to_the_clean_address(client):
    reference, code = filed(client)
    visitor_ = client.application.test_client()
    answer = visitor_.get(f"https://localhost/fr/track/{reference}?k={code}")
    assert answer.status_code == 200
    [cookie] = [
        c
        for c in answer.headers.getlist("Set-Cookie")
        if c.startswith(f"loket_case_{reference}=") and f"Path=/fr/track/{reference}" in c
    ]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    body = text(answer)
    target = f"/fr/track/{reference}"
    assert f'content="0;url={target}"' in body and f'href="{target}"' in body
    assert code not in body  # the page that moves on does not repeat it
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"


# ------------------------------------------------------------------- every wrong code counts


def _wrong(source: str, guesser, reference: str) -> int:
    """One wrong code for `reference` through `source`; returns the status code answered."""
    if source == "form":
        return guesser.post(
            "/fr/track",
            data={
                "csrf_token": token_of(guesser, "/fr/track"),
                "reference": reference,
                "code": "wrong-" + uuid.uuid4().hex,
            },
        ).status_code
    if source == "link":
        return guesser.get(f"/fr/track/{reference}?k=wrong-{uuid.uuid4().hex}").status_code
    if source == "api":
        return guesser.get(
            f"/api/v1/cases/{reference}",
            headers={"Authorization": f"Bearer wrong-{uuid.uuid4().hex}"},
        ).status_code
    _case_cookie(guesser, reference, "wrong-" + uuid.uuid4().hex)
    if source == "cookie":
        return guesser.get(f"/fr/track/{reference}").status_code
    if source == "download":
        return guesser.get(f"/fr/track/{reference}/files/1").status_code
    if source == "reply":
        return guesser.post(
            f"/fr/track/{reference}/reply/1",
            data={"csrf_token": token_of(guesser, "/fr/track"), "text": "Voici la facture."},
        ).status_code
    if source == "withdraw":
        return guesser.get(f"/fr/track/{reference}/withdraw").status_code
    raise AssertionError(source)


WRONG_ANSWERS = {
    "form": 404,
    "link": 404,
    "api": 404,
    "cookie": 200,  # the page to open a case, the wrong cookie deleted
    "download": 404,
    "reply": 303,  # back to the case's page, which asks for the code
    "withdraw": 303,
}


@pytest.mark.parametrize("source", sorted(WRONG_ANSWERS))
def test_every_wrong_code_counts_wherever_it_comes_from(app, source):
    holder = visitor(app)
    reference, code = filed(holder)
    app.config[ratelimits.TRACKING_LIMIT] = "2 per hour"
    guesser = visitor(app)
    assert [_wrong(source, guesser, reference) for _ in range(2)] == [WRONG_ANSWERS[source]] * 2
    # the address is used up: even the right code is refused there, so it learns nothing
    refused = guesser.get(f"/fr/track/{reference}?k={code}")
    assert refused.status_code == 429 and "Trop de tentatives" in text(refused)
    assert int(refused.headers["Retry-After"]) > 0
    api = guesser.get(f"/api/v1/cases/{reference}", headers={"Authorization": f"Bearer {code}"})
    assert api.status_code == 429 and api.mimetype == "application/problem+json"
    assert api.get_json()["type"] == "/problems/too-many-requests"
    assert int(api.headers["Retry-After"]) > 0
    # the holder, elsewhere, is not locked out of their case
    assert holder.get(f"/fr/track/{reference}?k={code}").status_code == 200
    assert f"Votre dossier {reference}" in text(holder.get(f"/fr/track/{reference}"))


def test_the_right_code_is_not_counted(app):
    holder = visitor(app)
    reference, code = filed(holder)
    app.config[ratelimits.TRACKING_LIMIT] = "2 per hour"
    for _ in range(5):
        assert holder.get(f"/fr/track/{reference}?k={code}").status_code == 200
        assert holder.get(f"/fr/track/{reference}").status_code == 200


def test_a_case_under_attack_from_many_addresses_still_opens_for_the_holder(app, caplog):
    holder = visitor(app)
    reference, code = filed(holder)
    app.config[ratelimits.TRACKING_LIMIT] = "2 per hour"
    app.config[ratelimits.TRACKING_CASE_LIMIT] = "3 per hour"
    guessers = [visitor(app) for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="hub.ratelimits"):
        # each address guesses once: the case's counter runs out, no address's does
        assert [_wrong("link", g, reference) for g in guessers] == [404] * 5
    alarms = [r.getMessage() for r in caplog.records if "under attack" in r.getMessage()]
    assert alarms and reference in alarms[0] and code not in " ".join(alarms)
    # the holder, from a new address, gets in: a case is never locked by guessers
    latecomer = visitor(app)
    assert latecomer.get(f"/fr/track/{reference}?k={code}").status_code == 200
    assert f"Votre dossier {reference}" in text(latecomer.get(f"/fr/track/{reference}"))
    # ... but an address that used up its own limit is refused the right code too
    persistent = guessers[0]
    assert _wrong("link", persistent, reference) == 404
    assert persistent.get(f"/fr/track/{reference}?k={code}").status_code == 429


# -------------------------------------------------------------------------------- the JSON API


def _case(email: str | None = None) -> dict:
    body = json.loads(json.dumps(CASE))
    if email:
        body["consumer"]["email"] = email
    return body


def _count(hub, model, *where) -> int:
    with hub.db.session(read_only=True) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_the_api_files_a_limited_number_of_cases_per_address(app, hub):
    app.config[ratelimits.API_FILING_LIMIT] = "2 per hour"
    client = visitor(app)
    assert client.post("/api/v1/cases", json={"kind": "complaint"}).status_code == 422  # free
    assert [client.post("/api/v1/cases", json=_case()).status_code for _ in range(2)] == [201] * 2
    third = client.post("/api/v1/cases", json=_case())
    assert third.status_code == 429 and third.mimetype == "application/problem+json"
    problem = third.get_json()
    assert problem["type"] == "/problems/too-many-requests" and problem["status"] == 429
    assert "Nothing was stored" in problem["detail"]
    assert 0 < int(third.headers["Retry-After"]) <= 3600
    assert _count(hub, Case) == 2
    assert visitor(app).post("/api/v1/cases", json=_case()).status_code == 201  # another address


def test_confirmation_mails_to_one_address_are_limited_and_the_cases_still_filed(app, hub, caplog):
    app.config[ratelimits.CONFIRMATION_MAIL_LIMIT] = "2 per hour"
    victim = f"victim-{uuid.uuid4().hex[:8]}@example.be"
    spellings = [victim, victim.upper(), f" {victim} ".strip().capitalize()]
    with caplog.at_level(logging.INFO):
        answers = [visitor(app).post("/api/v1/cases", json=_case(e)) for e in spellings]
    assert [a.status_code for a in answers] == [201, 201, 201]  # all three filed
    mails = _count(hub, Notification, Notification.kind == "filed")
    assert mails == 2
    withheld = [r for r in caplog.records if "confirmation mail withheld" in r.getMessage()]
    assert len(withheld) == 1
    logged = " ".join(r.getMessage() for r in caplog.records).lower()
    assert victim.lower() not in logged
    # another recipient is not affected
    other = f"other-{uuid.uuid4().hex[:8]}@example.be"
    assert visitor(app).post("/api/v1/cases", json=_case(other)).status_code == 201
    assert _count(hub, Notification, Notification.kind == "filed") == 3


# ----------------------------------------------------------------------- the client's address


def test_x_forwarded_for_is_ignored_without_trusted_proxies(hub):
    app = _app(hub)
    app.config[ratelimits.TRACKING_LIMIT] = "1 per hour"
    proxy = visitor(app, "192.0.2.10")
    one = {"X-Forwarded-For": "198.51.100.1"}
    two = {"X-Forwarded-For": "198.51.100.2"}
    assert proxy.get("/fr/track/LK-AAAA-AAAA?k=x", headers=one).status_code == 404
    # a different forwarded address from the same peer is the same client
    assert proxy.get("/fr/track/LK-AAAA-AAAA?k=y", headers=two).status_code == 429


def test_x_forwarded_for_names_the_client_behind_trusted_proxies(hub):
    app = _app(hub, trusted_proxies=1)
    app.config[ratelimits.TRACKING_LIMIT] = "1 per hour"
    proxy = visitor(app, "192.0.2.11")
    one = {"X-Forwarded-For": "198.51.100.11"}
    two = {"X-Forwarded-For": "198.51.100.12"}
    assert proxy.get("/fr/track/LK-AAAA-AAAA?k=x", headers=one).status_code == 404
    assert proxy.get("/fr/track/LK-AAAA-AAAA?k=y", headers=two).status_code == 404
    assert proxy.get("/fr/track/LK-AAAA-AAAA?k=z", headers=one).status_code == 429
    # a client cannot add its own hop in front: with one proxy, the last address counts
    spoof = {"X-Forwarded-For": "203.0.113.9, 198.51.100.11"}
    assert proxy.get("/fr/track/LK-AAAA-AAAA?k=w", headers=spoof).status_code == 429


def test_the_settings_name_the_store_and_the_proxies_and_refuse_typos():
    s = Settings.from_env({"LOKET_RATELIMIT_STORAGE": REDIS_URL, "LOKET_TRUSTED_PROXIES": "2"})
    assert (s.ratelimit_storage, s.trusted_proxies) == (REDIS_URL, 2)
    d = Settings.from_env({})
    assert (d.ratelimit_storage, d.trusted_proxies) == ("memory://", 0)
    with pytest.raises(ConfigError, match="LOKET_RATELIMIT_STORAGE"):
        Settings.from_env({"LOKET_RATELIMIT_STORAGE": "carrier-pigeon://loft"})
    with pytest.raises(ConfigError, match="LOKET_TRUSTED_PROXIES"):
        Settings.from_env({"LOKET_TRUSTED_PROXIES": "two"})
    with pytest.raises(ConfigError, match="LOKET_CONFIRMATION_MAIL_LIMIT"):
        Settings.from_env({"LOKET_CONFIRMATION_MAIL_LIMIT": "five an hour"})


# ------------------------------------------------------------------------------ shared store


def test_two_web_processes_sharing_redis_count_together_and_in_memory_they_do_not(hub):
    redis_url = _redis_or_skip()
    reference = "LK-ZZZZ-ZZZZ"
    address = _address()
    for storage, limited in ((redis_url, True), ("memory://", False)):
        first, second = _app(hub, storage), _app(hub, storage)
        assert first.extensions[ratelimits.EXTENSION] is not second.extensions[ratelimits.EXTENSION]
        # Flask-Limiter's limits (filing on the pages, back-office sign-in) use the same store
        with first.app_context():
            from hub.frontdesk import limiter

            assert limiter.storage.check() and type(limiter.storage).__name__ == (
                "RedisStorage" if limited else "MemoryStorage"
            )
        for app in (first, second):
            app.config[ratelimits.TRACKING_LIMIT] = "2 per hour"
        a, b = visitor(first, address), visitor(second, address)
        assert _wrong("link", a, reference) == 404
        assert _wrong("link", b, reference) == 404
        # the third wrong code, on the first instance: over the limit only if they share
        assert (_wrong("link", a, reference) == 429) is limited
        address = _address()


# ------------------------------------------------------------------- what a guess costs


def test_a_wrong_code_reads_the_case_row_only_as_an_unknown_reference_does(client, hub):
    """No document bytes (nor lines, timeline, parties) are loaded for a wrong code, and a wrong
    code costs the statements an unknown reference costs."""
    from io import BytesIO

    from sqlalchemy import event

    from hub import consumer
    from hub.reference import new_reference
    from tests.support.frontdesk import PDF

    reference, code = filed(client, files=[(BytesIO(PDF * 1000), "facture.pdf")])
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(hub.db.engine, "before_cursor_execute", seen)
    try:
        runs = {}
        unknown = next(r for r in iter(new_reference, None) if r != reference)
        for name, ref, token in (("wrong", reference, "x" * 32), ("unknown", unknown, "x" * 32)):
            statements.clear()
            with hub.db.session(read_only=True) as s:
                assert consumer.find_case(s, ref, token) is None
            runs[name] = [st for st in statements if st.lstrip().upper().startswith("SELECT")]
        with pytest.raises(consumer.WrongCode):
            consumer.attachment(hub.db, reference, "x" * 32, 1)
        assert not any("attachments" in st for st in statements)
        statements.clear()
        with hub.db.session(read_only=True) as s:
            assert consumer.find_case(s, reference, code) is not None
        right = [st for st in statements if "attachments" in st]
    finally:
        event.remove(hub.db.engine, "before_cursor_execute", seen)
    assert len(runs["wrong"]) == len(runs["unknown"]) == 1
    assert "attachments" not in runs["wrong"][0]
    assert right and all(".data" not in st.split("FROM", 1)[0] for st in right)


def test_when_the_shared_store_is_down_wrong_codes_are_still_counted_in_the_process(hub, caplog):
    port = free_port()  # nothing listens there
    app = _app(hub, f"redis://127.0.0.1:{port}/0")
    app.config[ratelimits.TRACKING_LIMIT] = "2 per hour"
    guesser = visitor(app)
    with caplog.at_level(logging.ERROR, logger="hub.ratelimits"):
        answers = [_wrong("link", guesser, "LK-AAAA-AAAA") for _ in range(3)]
    assert answers == [404, 404, 429]  # no server error, and still limited
    reference, _code = filed(visitor(app))  # Flask-Limiter's filing limit falls back too
    assert reference.startswith("LK-")
    assert any("unreachable" in r.getMessage() for r in caplog.records)


def test_a_shared_store_that_stops_answering_holds_no_request(hub, caplog):
    """A Redis that takes connections and never answers (a hung host): a request that counts an
    attempt gives up on it after its timeout and counts in memory, and the store is left alone
    for a while after that, so the hang is not paid again on every request."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    stop = threading.Event()

    def take_and_never_answer():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    taker = threading.Thread(target=take_and_never_answer, daemon=True)
    taker.start()
    answers: list[int] = []
    references: list[str] = []

    def consumer():
        app = _app(hub, f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        app.config[ratelimits.TRACKING_LIMIT] = "3 per hour"
        guesser = visitor(app)
        answers.extend(_wrong("link", guesser, "LK-AAAA-AAAA") for _ in range(12))
        references.append(filed(visitor(app))[0])  # Flask-Limiter's limits give up on it too

    try:
        with caplog.at_level(logging.ERROR, logger="hub.ratelimits"):
            requests_ = threading.Thread(target=consumer, daemon=True)
            requests_.start()
            requests_.join(timeout=60)  # without a timeout the first request waits for ever
            assert not requests_.is_alive(), "a request waited on the store that never answers"
    finally:
        stop.set()
        taker.join()
        for conn in held:
            conn.close()
        listener.close()
    assert answers == [404] * 3 + [429] * 9  # still limited, in this process's memory
    assert references and references[0].startswith("LK-")
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    # 12 refused guesses count twice each (a check and a hit) and the filing a few times more:
    # asked every time, the store would have taken 25 connections or more
    assert 1 <= len(held) < 12, len(held)
