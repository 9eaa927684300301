"""What the request/answer transports (REST, SOAP) share about reading an agency's answer.

An agency's changes feed and its per-case status answer are described the same way whatever
carries them: dotted paths to the list of changes, the next cursor, "more to come", and each
change's reference, status, time, message and id. Both transports read those with these schemas
and `parse_time`, so a transport module never imports another transport's internals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields


class ChangesSchema(Schema):
    """Where the fields of a changes-since answer live (dotted paths into the answer)."""

    items = fields.String(load_default="changes")
    next_cursor = fields.String(load_default="next")
    has_more = fields.String(load_default="has_more")
    reference = fields.String(load_default="case_id")
    case_reference = fields.String(load_default="external_reference")
    status = fields.String(load_default="status")
    time = fields.String(load_default="at")
    message = fields.String(load_default="note")
    id = fields.String(load_default="seq")


class StatusSchema(Schema):
    """Where the fields of a per-case status answer live."""

    status = fields.String(load_default="status")
    time = fields.String(load_default="updated_at")
    message = fields.String(load_default="note")


def parse_time(value: Any) -> datetime:
    """An agency's time as an aware datetime: epoch seconds, or ISO 8601 (`Z` allowed; without
    an offset it is read as UTC). Raises ValueError when there is no usable time."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    raise ValueError(f"no usable time in {value!r}")


def opt_str(value: Any) -> str | None:
    """A field of an answer as text, None staying None."""
    return None if value is None else str(value)
