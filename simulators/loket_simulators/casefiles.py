"""The files an SFTP agency's batch reads and writes, as the agency's own software would.

Written for the simulator alone, on purpose: it shares no code with the hub's SFTP adapter, so a
mistake in the adapter's file handling shows up as a file this agency refuses, instead of being
repeated on both sides.

What the agency reads from its inbox:
- case files: JSON (one object), XML (one root element; child elements become keys, a repeated
  element a list) or CSV (a header and one data row; dotted column names nest);
- message files: a consumer's reply on a case, the same formats with `kind: message`, the hub's
  case reference and/or the agency's, the text, the language and the names of the attached
  files (in the folder `<message file>.attachments/` beside it).
What it writes to its outbox: status files, several records each, in the agency's format.
How it judges a case file: its contract (an XSD checked with lxml, a JSON Schema, or a CSV layout
file of column rules), each problem a line naming the field.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

FORMATS = ("xml", "json", "csv")
EXTENSIONS = {fmt: fmt for fmt in FORMATS}
CONTRACT_FILES = {"xml": "case.xsd", "json": "case.schema.json", "csv": "case.layout.yaml"}
MESSAGE = "message"

Contract = Callable[[bytes], list[str]]


class FileRefused(ValueError):
    """A file the agency cannot read; the message is what goes into its `.reason.txt`."""


# ------------------------------------------------------------------------------------ names


def name_problem(name: str) -> str | None:
    """Why the batch will not touch a file of this name, or None. A name is one path component:
    no separators, no '..', no control characters, not empty, at most 255 characters."""
    if not name:
        return "empty name"
    if len(name) > 255:
        return "longer than 255 characters"
    if re.search(r"[\x00-\x1f\x7f]", name):
        return "contains control characters"
    if re.search(r"[/\\]", name):
        return "contains a path separator"
    if ".." in name or name == ".":
        return "contains '..'" if ".." in name else "is '.'"
    return None


def attachments_dir(message_file: str) -> str:
    """Where the files attached to a message file wait: a folder beside it."""
    return message_file + ".attachments"


# -------------------------------------------------------------------------------- reading


def _xml_tree(data: bytes) -> Any:
    """An untrusted XML file: a DOCTYPE (and with it any entity) is refused before parsing."""
    if re.search(rb"<!\s*(DOCTYPE|ENTITY)", data, re.IGNORECASE):
        raise FileRefused("XML with a DOCTYPE or entity declaration is refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FileRefused(f"not well-formed XML: {exc}") from None


def _element_value(element: Any) -> Any:
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return element.text or ""
    value: dict[str, Any] = {}
    for child in children:
        key, item = etree.QName(child).localname, _element_value(child)
        if key not in value:
            value[key] = item
        elif isinstance(value[key], list):
            value[key].append(item)
        else:
            value[key] = [value[key], item]
    return value


def _csv_table(data: bytes, delimiter: str) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not UTF-8 text: {exc}") from None
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    rows = [row for row in rows if row]
    if not rows:
        raise FileRefused("no header row")
    header, table = rows[0], []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) > len(header):
            raise FileRefused(f"line {number}: more values than the header has columns")
        record: dict[str, Any] = {}
        for column, value in zip(header, row, strict=False):
            if value == "":
                continue
            *parents, leaf = column.split(".")
            node = record
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise FileRefused(f"column {column!r} clashes with column {part!r}")
            node[leaf] = value
        table.append(record)
    return table


def read_record(data: bytes, fmt: str, *, delimiter: str = ";") -> dict[str, Any]:
    """The one record of a case or message file, as nested mappings (text values from XML and
    CSV, which carry no types)."""
    if fmt == "json":
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise FileRefused(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise FileRefused("a JSON file must hold one object")
        return value
    if fmt == "xml":
        value = _element_value(_xml_tree(data))
        return value if isinstance(value, dict) else {}
    if fmt == "csv":
        table = _csv_table(data, delimiter)
        if len(table) != 1:
            raise FileRefused(f"one data row expected, the file has {len(table)}")
        return table[0]
    raise FileRefused(f"the agency reads {', '.join(FORMATS)} files, not {fmt!r}")


def is_message(data: bytes, fmt: str, *, delimiter: str = ";") -> bool:
    """A message file says `kind: message`; anything else (even unreadable) is a case file."""
    try:
        return read_record(data, fmt, delimiter=delimiter).get("kind") == MESSAGE
    except FileRefused:
        return False


def read_message(data: bytes, fmt: str, *, delimiter: str = ";") -> dict[str, Any]:
    """A message file: case_reference, agency_reference, text, language (texts, "" if absent)
    and attachments (a list of file names)."""
    record = read_record(data, fmt, delimiter=delimiter)
    if record.get("kind") != MESSAGE:
        raise FileRefused("not a message file")
    out: dict[str, Any] = {}
    for key in ("case_reference", "agency_reference", "text", "language"):
        value = record.get(key)
        if isinstance(value, dict | list):
            raise FileRefused(f"{key!r} must be text")
        out[key] = "" if value is None else str(value)
    if not (out["case_reference"] or out["agency_reference"]):
        raise FileRefused("names no case (neither 'case_reference' nor 'agency_reference')")
    names = record.get("attachments")
    if isinstance(names, dict):  # XML: <attachments><attachment>name</attachment>...
        names = names.get("attachment")
    if isinstance(names, str) and fmt == "csv" and names.startswith("["):
        try:
            names = json.loads(names)
        except ValueError:
            raise FileRefused("'attachments' is not a JSON list of names") from None
    if names in (None, ""):
        names = []
    elif isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise FileRefused("'attachments' must be a list of file names")
    out["attachments"] = names
    return out


# -------------------------------------------------------------------------------- writing


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _add_element(parent: Any, key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            _add_element(parent, key, item)
        return
    child = etree.SubElement(parent, key)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _add_element(child, k, v)
    else:
        child.text = _text(value)


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = value
    return out


def write_statuses(
    records: Iterable[Mapping[str, Any]],
    fmt: str,
    *,
    root: str = "statuses",
    record: str = "status",
    delimiter: str = ";",
) -> bytes:
    """One status file of the batch: JSON `{root: [records]}`, XML `<root><record>...`, or CSV
    (a header of dotted column names, a row per record)."""
    rows = list(records)
    if fmt == "json":
        return (json.dumps({root: rows}, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "xml":
        document = etree.Element(root)
        for row in rows:
            _add_element(document, record, row)
        etree.indent(document)
        return etree.tostring(document, xml_declaration=True, encoding="UTF-8") + b"\n"
    if fmt == "csv":
        flat = [_flat(row) for row in rows]
        header = list(dict.fromkeys(k for row in flat for k in row))
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(header)
        for row in flat:
            writer.writerow([_text(row[k]) if k in row else "" for k in header])
        return buffer.getvalue().encode("utf-8")
    raise ValueError(f"the agency writes {', '.join(FORMATS)} files, not {fmt!r}")


# ------------------------------------------------------------------------------- contracts


def case_contract(folder: Path, fmt: str) -> Path | None:
    """The file of an agency's contract folder that describes its case files in `fmt`."""
    path = folder / CONTRACT_FILES.get(fmt, "")
    return path if path.is_file() else None


def load_contract(path: Path, fmt: str) -> Contract:
    """What the batch checks a case file against; the checker lists problems, [] if none."""
    if fmt == "xml":
        return _xsd(path)
    if fmt == "json":
        return _json_schema(path)
    if fmt == "csv":
        return _csv_layout(path)
    raise ValueError(f"no case file contract for {fmt!r}")


def _xsd(path: Path) -> Contract:
    schema = etree.XMLSchema(etree.parse(str(path)))

    def check(data: bytes) -> list[str]:
        try:
            document = _xml_tree(data)
        except FileRefused as exc:
            return [str(exc)]
        if schema.validate(document):
            return []
        return [f"{error.path}: {error.message}" for error in schema.error_log]

    return check


def _json_schema(path: Path) -> Contract:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))

    def check(data: bytes) -> list[str]:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return [f"not valid JSON: {exc}"]
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '(file)'}: {e.message}"
            for e in validator.iter_errors(document)
        ]

    return check


def _csv_layout(path: Path) -> Contract:
    layout = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    columns: dict[str, dict[str, Any]] = {
        str(name): dict(rules or {}) for name, rules in (layout.get("columns") or {}).items()
    }
    delimiter = str(layout.get("delimiter", ";"))
    rows = layout.get("rows")

    def value_problem(name: str, rules: Mapping[str, Any], value: str) -> str | None:
        if value == "":
            return f"column {name} is required and has no value" if rules.get("required") else None
        allowed = [str(v) for v in rules.get("values") or ()]
        if allowed and value not in allowed:
            return f"column {name}: {value!r} is not one of {', '.join(allowed)}"
        if rules.get("pattern") and not re.fullmatch(str(rules["pattern"]), value):
            return f"column {name}: {value!r} does not match {rules['pattern']}"
        if rules.get("max_length") is not None and len(value) > int(rules["max_length"]):
            return f"column {name}: longer than {rules['max_length']} characters"
        return None

    def check(data: bytes) -> list[str]:
        try:
            text = data.decode("utf-8-sig")
            table = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
        except (UnicodeDecodeError, csv.Error) as exc:
            return [f"unreadable CSV: {exc}"]
        if not table:
            return ["no header row"]
        header, body = table[0], table[1:]
        problems = [f"column {n} is not in the agency's layout" for n in header if n not in columns]
        if rows is not None and len(body) != int(rows):
            problems.append(f"{len(body)} data row(s), the layout wants {rows}")
        for row in body:
            values = dict(zip(header, row, strict=False))
            for name, rules in columns.items():
                problem = value_problem(name, rules, values.get(name, ""))
                if problem:
                    problems.append(problem)
        return problems

    return check
