"""Flask's JSON answers (`jsonify`, a view returning a dict) serialised by orjson.

The hub's hottest answer, a filed case (POST /api/v1/cases), is built by `jsonify`; the standard
library's encoder was a measurable part of it. orjson writes the same text as Flask's provider
as configured here (keys sorted, compact, UTF-8 unescaped, one newline at the end; dates as
HTTP dates, decimals as strings, through Flask's own `default`). What orjson refuses (an integer
beyond 64 bits, a lone surrogate, a key that is not a string) goes to Flask's provider, which
answers as it always did; so do the configurations orjson cannot write (indented output in
debug mode, `ensure_ascii`, unsorted keys). One difference remains: a NaN or an infinite float
becomes `null`, where the standard library writes `NaN` (not JSON).

Parsing stays with Flask's provider: the API's error messages name what the standard library's
parser reports.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_APPEND_NEWLINE
    # Flask writes dates as HTTP dates and dataclasses through its `default`: orjson must too
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


class OrjsonProvider(DefaultJSONProvider):
    ensure_ascii = False  # the hub's answers carry nl/fr/de text as UTF-8

    def response(self, *args: Any, **kwargs: Any) -> Response:
        pretty = self.compact is False or (self.compact is None and self._app.debug)
        if pretty or self.ensure_ascii or not self.sort_keys:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)
