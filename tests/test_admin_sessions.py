"""Back-office sessions end when the account says so: signing out ends every copy of the
session cookie (a cookie taken before the sign-out gets the sign-in page), disabling does too,
and signing in costs the same work for an unknown, a disabled and an existing name."""

from __future__ import annotations

import pytest

from hub import accounts
from tests.support.backoffice import PASSWORD, sign_in, token_of


def replay(client, cookie: str):
    """A second browser that presents a copied session cookie."""
    thief = client.application.test_client()
    thief.set_cookie("session", cookie)
    return thief


def test_a_cookie_copied_before_sign_out_gets_the_sign_in_page(client, hub):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    copied = client.get_cookie("session").value
    assert replay(client, copied).get("/admin/flows").status_code == 200
    out = client.post("/admin/logout", data={"csrf_token": token_of(client, "/admin/flows")})
    assert out.status_code == 302 and out.headers["Location"].endswith("/admin/login")
    for visitor in (replay(client, copied), client):
        answer = visitor.get("/admin/flows")
        assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]
        assert "Sign in" in visitor.get(answer.headers["Location"]).get_data(as_text=True)
    sign_in(client, "olga")  # a new sign-in works again
    assert client.get("/admin/flows").status_code == 200


def test_disabling_and_enabling_again_does_not_revive_an_old_cookie(client, hub):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    sign_in(client, "olga")
    copied = client.get_cookie("session").value
    accounts.disable(hub.db, "olga")
    accounts.ensure_demo(hub.db, "olga", "operator", None, hub.clock.now())  # enabled again
    answer = replay(client, copied).get("/admin/flows")
    assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"]


def test_a_session_from_before_session_versions_must_sign_in_again(client, hub):
    accounts.add(hub.db, "olga", "operator", None, hub.clock.now(), PASSWORD)
    [olga] = [a for a in [accounts.authenticate(hub.db, "olga", PASSWORD)] if a]
    with client.session_transaction() as session:
        session["admin_user"] = olga.id  # no admin_version: an old cookie
    assert client.get("/admin/flows").status_code == 302


@pytest.fixture
def hash_checks(monkeypatch):
    counted = {"check": 0, "generate": 0}
    accounts._stand_in_hash()  # made once per process, before any sign-in is timed
    check, generate = accounts.check_password_hash, accounts.generate_password_hash

    def counting_check(*a):
        counted["check"] += 1
        return check(*a)

    def counting_generate(*a, **kw):
        counted["generate"] += 1
        return generate(*a, **kw)

    monkeypatch.setattr(accounts, "check_password_hash", counting_check)
    monkeypatch.setattr(accounts, "generate_password_hash", counting_generate)
    return counted


def test_signing_in_does_one_password_hash_for_any_name(hub, hash_checks):
    now = hub.clock.now()
    accounts.add(hub.db, "olga", "operator", None, now, PASSWORD)
    accounts.add(hub.db, "dirk", "operator", None, now, PASSWORD)
    accounts.disable(hub.db, "dirk")
    hash_checks.update(check=0, generate=0)
    for name, password, signed_in in [
        ("nobody", PASSWORD, False),
        ("dirk", PASSWORD, False),  # disabled, right password
        ("olga", "wrong", False),
        ("olga", PASSWORD, True),
    ]:
        before = dict(hash_checks)
        assert (accounts.authenticate(hub.db, name, password) is not None) is signed_in
        assert hash_checks["check"] - before["check"] == 1, name
        assert hash_checks["generate"] == before["generate"], name
