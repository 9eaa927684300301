"""Shared test helpers: backoffice."""

from __future__ import annotations

import re

PASSWORD = "correct horse battery"


def token_of(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name: str) -> None:
    token = token_of(client, "/admin/login")
    answer = client.post(
        "/admin/login", data={"csrf_token": token, "name": name, "password": PASSWORD}
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)


def post(client, path: str, data: dict, page: str = "/admin/flows"):
    return client.post(path, data={"csrf_token": token_of(client, page), **data})
