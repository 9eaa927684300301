"""The web server's access log without query strings.

A consumer's private link is `/track/LK-…?k=<code>`: whoever reads the access log (an operator, a
log shipper, a backup) could open the case. gunicorn logs the raw request line, the query
string and the referrer; this logger keeps the path and drops every query, whatever the
format string asks for.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

HIDDEN = "?…"


def without_query(url: Any) -> Any:
    """The URL (or request line) with its query string replaced by `?…`."""
    if not isinstance(url, str) or "?" not in url:
        return url
    head, _, rest = url.partition("?")
    tail = rest.split(" ", 1)  # a request line goes on with " HTTP/1.1"
    return head + HIDDEN + (" " + tail[1] if len(tail) > 1 else "")


class PrivateAccessLogger(Logger):
    """gunicorn's logger, with query strings taken out of every atom that can hold one."""

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "f", "{referer}i", "{raw_uri}e", "{http_referer}e", "{request_uri}e"):
            if key in atoms:
                atoms[key] = without_query(atoms[key])
        for key in ("q", "{query_string}e"):
            if atoms.get(key):
                atoms[key] = HIDDEN
        return atoms
