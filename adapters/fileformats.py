"""Case files and status files in JSON, XML or CSV: what file-based transports (SFTP) exchange.

One module so that the adapter (which writes case files and reads status files) and the agency
simulator (which reads case files and writes status files) agree byte for byte.

- JSON: the payload as it is (UTF-8, indented).
- XML: one root element; the payload's keys become elements, nested mappings nest, lists repeat
  the element. Read with defusedxml: a document with a DOCTYPE or entity declaration is refused
  after decoding (so a UTF-16 file cannot slip one past a byte-level check), and no external
  (or exponential) entity is ever expanded.
- CSV: a header row and one row per record; nested keys are flattened with dots
  (`complainant.name`), lists are written as JSON text. A UTF-8 byte order mark is tolerated.
  A written cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a
  tab or a carriage return) gets a leading `'` (OWASP's CSV-injection rule): the text comes from
  consumers and traders and ends up in agencies' spreadsheets. Reading leaves cells as they are.

Values read back from XML and CSV are text: these formats carry no types.

Files come from the far side and are hostile until read: nesting deeper than MAX_DEPTH is a
FormatError (never a RecursionError, which would look like a fault of the hub and stall the
agency's queue behind one file), and so is any document the parser refuses.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

from adapters.base import csv_cell

FORMATS = ("json", "xml", "csv")
EXTENSIONS = {"json": "json", "xml": "xml", "csv": "csv"}
XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Deeper than any agency layout needs (a record holds a few levels); bounds the work of reading.
MAX_DEPTH = 32


class FormatError(ValueError):
    """A file cannot be written or read in its format; the message says where and why."""


# ------------------------------------------------------------------------------------ helpers


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def unflatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FormatError(f"column {key!r} clashes with column {part!r}")
            node = child
        node[leaf] = value
    return out


# ---------------------------------------------------------------------------------------- XML


def _to_element(parent: ET.Element, key: str, value: Any) -> None:
    if not isinstance(key, str) or not XML_NAME.match(key) or key.lower().startswith("xml"):
        raise FormatError(f"{key!r} cannot be an XML element name (letters, digits, _ . -)")
    if value is None:
        return
    if isinstance(value, list | tuple):
        for entry in value:
            _to_element(parent, key, entry)
        return
    child = ET.SubElement(parent, key)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _to_element(child, k, v)
    else:
        child.text = _text(value)


def _from_element(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    out: dict[str, Any] = {}
    for child in children:
        value = _from_element(child)
        if child.tag in out:
            existing = out[child.tag]
            out[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[child.tag] = value
    return out


def parse_xml(data: bytes) -> ET.Element:
    """Parse untrusted XML: no DOCTYPE, no entity declarations, nothing fetched, in whatever
    encoding the document declares; at most MAX_DEPTH levels deep."""
    try:
        root = _defused_fromstring(data, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException:
        raise FormatError("XML with a DOCTYPE or entity declaration is not accepted") from None
    except ET.ParseError as exc:
        raise FormatError(f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # an encoding Python does not know, say
        raise FormatError(f"unreadable XML: {exc}") from None
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FormatError(f"XML nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in element)
    return root


def parse_json(data: bytes) -> Any:
    """Parse untrusted JSON (UTF-8, a BOM tolerated), at most MAX_DEPTH levels deep."""
    try:
        value = json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data)
    except RecursionError:
        raise FormatError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"not valid JSON: {exc}") from None
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise FormatError(f"JSON nested deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return value


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


# ---------------------------------------------------------------------------------------- CSV


def _csv_cell(value: Any) -> str:
    return csv_cell(_text(value))


def _csv_bytes(rows: Iterable[Mapping[str, Any]], delimiter: str) -> bytes:
    flat = [
        {
            k: (json.dumps(v, ensure_ascii=False) if isinstance(v, list | tuple) else v)
            for k, v in flatten(row).items()
            if v is not None
        }
        for row in rows
    ]
    header: list[str] = []
    for row in flat:
        header += [k for k in row if k not in header]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    for row in flat:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


def _csv_rows(data: bytes, delimiter: str) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        if not reader.fieldnames:
            raise FormatError("no header row")
        rows = []
        for row in reader:
            if None in row:
                raise FormatError(
                    f"line {reader.line_num}: more values than the header has columns"
                )
            rows.append(unflatten({k: v for k, v in row.items() if v not in (None, "")}))
        return rows
    except csv.Error as exc:
        raise FormatError(f"line {reader.line_num}: {exc}") from None


# -------------------------------------------------------------------------------- case files


def write_case(payload: Mapping[str, Any], fmt: str, *, root: str = "case", delimiter=";") -> bytes:
    """One case file: the agency's payload in its format."""
    if fmt == "json":
        return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "xml":
        element = ET.Element(root)
        for key, value in payload.items():
            _to_element(element, key, value)
        return _xml_bytes(element)
    if fmt == "csv":
        return _csv_bytes([payload], delimiter)
    raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def read_case(data: bytes, fmt: str, *, delimiter: str = ";") -> dict[str, Any]:
    """A case file read back (by the agency simulator and tests)."""
    if fmt == "json":
        value = parse_json(data)
        if not isinstance(value, dict):
            raise FormatError("a JSON case file must hold an object")
        return value
    if fmt == "xml":
        value = _from_element(parse_xml(data))
        return value if isinstance(value, dict) else {}
    if fmt == "csv":
        rows = _csv_rows(data, delimiter)
        if len(rows) != 1:
            raise FormatError(f"a CSV case file has one data row, this one has {len(rows)}")
        return rows[0]
    raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# ------------------------------------------------------------------------------ status files


def write_records(
    records: Iterable[Mapping[str, Any]],
    fmt: str,
    *,
    root: str = "statuses",
    record: str = "status",
    delimiter: str = ";",
) -> bytes:
    """A status file holding several records (what an agency's batch drops in its outbox)."""
    rows = list(records)
    if fmt == "json":
        return (json.dumps({root: rows}, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "xml":
        element = ET.Element(root)
        for row in rows:
            _to_element(element, record, row)
        return _xml_bytes(element)
    if fmt == "csv":
        return _csv_bytes(rows, delimiter)
    raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def read_records(
    data: bytes, fmt: str, *, root: str = "statuses", record: str = "status", delimiter=";"
) -> list[dict[str, Any]]:
    """The records of a status file, each a (nested) mapping of text or JSON values.

    JSON: a list of objects, or an object whose `root` key holds that list, or one object.
    XML: the `record` elements under the root, or the root itself when it is a `record`.
    CSV: one record per row after the header.
    """
    if fmt == "json":
        value = parse_json(data)
        if isinstance(value, dict):
            value = value.get(root, [value])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise FormatError(f"expected a list of objects (or an object with {root!r})")
        return value
    if fmt == "xml":
        element = parse_xml(data)
        elements = [element] if element.tag == record else list(element)
        bad = sorted({e.tag for e in elements if e.tag != record})
        if bad:
            raise FormatError(f"unexpected element(s) {', '.join(map(str, bad))}; want <{record}>")
        out = []
        for e in elements:
            value = _from_element(e)
            out.append(value if isinstance(value, dict) else {})
        return out
    if fmt == "csv":
        return _csv_rows(data, delimiter)
    raise FormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- message files

# A consumer's reply to an agency about a case it already has: one record per file, told apart
# from a case file by its `kind` ("message"). The record's fields are fixed (not the agency's
# case layout): kind, case_reference, agency_reference, text, language and attachments (the
# file names of the attachments, each a file of its own in `<message file>.attachments/`).
MESSAGE_KIND = "message"
MESSAGE_FIELDS = ("kind", "case_reference", "agency_reference", "text", "language")


def write_message(message: Mapping[str, Any], fmt: str, *, delimiter: str = ";") -> bytes:
    """One message file. JSON: the record as an object, `attachments` a list of names. XML: a
    <message> root, the names as <attachment> elements under <attachments>. CSV: a header and
    one row, `attachments` a JSON list (as every list in CSV)."""
    record = {key: message.get(key) for key in MESSAGE_FIELDS}
    record["kind"] = MESSAGE_KIND
    names = [str(name) for name in message.get("attachments") or ()]
    if fmt == "xml":
        element = ET.Element(MESSAGE_KIND)
        for key, value in record.items():
            _to_element(element, key, "" if value is None else value)
        _to_element(element, "attachments", {"attachment": names})
        return _xml_bytes(element)
    return write_case({**record, "attachments": names}, fmt, delimiter=delimiter)


def is_message(data: bytes, fmt: str, *, delimiter: str = ";") -> bool:
    """Whether a file in an agency's inbox is a message file (not a case file). A file that
    cannot be read at all is not a message: it is judged as a case file."""
    try:
        return read_case(data, fmt, delimiter=delimiter).get("kind") == MESSAGE_KIND
    except FormatError:
        return False


def read_message(data: bytes, fmt: str, *, delimiter: str = ";") -> dict[str, Any]:
    """A message file read back (by the agency simulator and tests): the record's fields as
    text and `attachments` as a list of names, whatever the format."""
    record = read_case(data, fmt, delimiter=delimiter)
    if record.get("kind") != MESSAGE_KIND:
        raise FormatError(f"not a message file (kind is {record.get('kind')!r})")
    out: dict[str, Any] = {}
    for key in MESSAGE_FIELDS:
        value = record.get(key)
        if isinstance(value, Mapping | list):
            raise FormatError(f"{key!r} must be text")
        out[key] = "" if value is None else _text(value)
    if not out["case_reference"] and not out["agency_reference"]:
        raise FormatError("names no case (neither 'case_reference' nor 'agency_reference')")
    raw = record.get("attachments")
    if isinstance(raw, Mapping):  # XML: <attachments><attachment>..</attachment></attachments>
        raw = raw.get("attachment")
    elif fmt == "csv" and isinstance(raw, str) and raw:
        try:
            raw = json.loads(raw)
        except ValueError:
            raise FormatError("'attachments' is not a JSON list of names") from None
    if raw in (None, ""):
        raw = []
    elif isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
        raise FormatError("'attachments' must be a list of file names")
    out["attachments"] = raw
    return out
