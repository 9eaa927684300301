"""An agency's own layout of the files it exchanges (XSD, JSON Schema or a CSV layout file).

One reader for both sides of a file-based transport, so they judge a file alike: the SFTP
adapter's `check_contract` (what `loket mappings validate` runs on sample cases) and the SFTP
agency simulator's batch (which refuses a case file off its contract, as the agency would).

- XML: an XSD, validated with lxml (zeep brings it). Without lxml only the root element and
  the required elements are checked, read from the XSD itself.
- JSON: a JSON Schema (draft 2020-12).
- CSV: a layout file (YAML): the delimiter, how many data rows, and the columns with `required`,
  `values`, `pattern` (the whole value must match) and `max_length`. Nested payload fields are
  columns with dotted names (`adapters.fileformats` flattens them).

Each problem names the agency field as a dotted path from the file's root (`onderneming.kbo`),
or "" when the file as a whole is wrong.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from adapters.fileformats import FormatError, parse_xml

# The file, in an agency's contract folder, that describes its case files in each format.
CASE_CONTRACTS = {"xml": "case.xsd", "json": "case.schema.json", "csv": "case.layout.yaml"}
XS = "{http://www.w3.org/2001/XMLSchema}"


@dataclass(frozen=True)
class Problem:
    field: str  # dotted agency field, "" for the whole file
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{where}{self.message}"


Checker = Callable[[bytes], list[Problem]]


class ContractError(ValueError):
    """The contract file itself cannot be read; the message names it."""


def load_checker(path: Path, fmt: str) -> Checker:
    """A function that lists what is wrong with a file of format `fmt` under the contract."""
    if not path.exists():
        raise ContractError(f"no {path.name} in {path.parent}")
    if fmt == "xml":
        return _xsd_checker(path)
    if fmt == "json":
        return _json_schema_checker(path)
    if fmt == "csv":
        return CsvLayout.load(path).check
    raise ContractError(f"no file contract for the format {fmt!r}")


# ---------------------------------------------------------------------------------------- XML


def _dotted(xpath: str) -> str:
    """`/melding/onderneming[1]/kbo` -> `onderneming.kbo` (the root is the file, not a field)."""
    parts = [re.sub(r"\[\d+\]$", "", p) for p in xpath.strip("/").split("/") if p]
    return ".".join(parts[1:])


class _Xsd:
    """Enough of an XSD to know each element's required children (for clear messages and for
    the check without lxml): global elements, inline or named complex types, sequence/all."""

    def __init__(self, path: Path):
        try:
            self.root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise ContractError(f"{path.name} is not well-formed XML: {exc}") from None
        self.elements = {e.get("name"): e for e in self.root.findall(f"{XS}element")}
        self.types = {t.get("name"): t for t in self.root.findall(f"{XS}complexType")}

    def _complex_type(self, decl: ET.Element) -> ET.Element | None:
        inline = decl.find(f"{XS}complexType")
        if inline is not None:
            return inline
        type_name = (decl.get("type") or "").split(":")[-1]
        return self.types.get(type_name)

    def children(self, decl: ET.Element) -> list[tuple[str, ET.Element, bool]]:
        """(name, declaration, required) of the child elements a declaration allows."""
        complex_type = self._complex_type(decl)
        out: list[tuple[str, ET.Element, bool]] = []

        def walk(node: ET.Element, required: bool) -> None:
            for child in node:
                if child.tag in (f"{XS}sequence", f"{XS}all"):
                    walk(child, required and child.get("minOccurs", "1") != "0")
                elif child.tag == f"{XS}choice":
                    walk(child, False)
                elif child.tag == f"{XS}element":
                    target = child
                    if child.get("ref"):
                        target = self.elements.get(child.get("ref", "").split(":")[-1], child)
                    name = target.get("name") or ""
                    out.append((name, target, required and child.get("minOccurs", "1") != "0"))

        if complex_type is not None:
            walk(complex_type, True)
        return out

    def declaration(self, names: list[str]) -> ET.Element | None:
        """The declaration of the element at a path of names from the root."""
        decl = self.elements.get(names[0]) if names else None
        for name in names[1:]:
            if decl is None:
                return None
            decl = next((d for n, d, _ in self.children(decl) if n == name), None)
        return decl

    def missing(self, element: Any, names: list[str]) -> list[str]:
        """Required children of `element` (at the path `names`) that it lacks."""
        decl = self.declaration(names)
        if decl is None:
            return []
        present = {_local(c.tag) for c in element if isinstance(c.tag, str)}
        return [n for n, _, required in self.children(decl) if required and n not in present]

    def required_problems(self, element: Any, names: list[str]) -> list[Problem]:
        """Missing required elements anywhere under `element` (the check without lxml)."""
        out = [
            _missing_problem(".".join([*names[1:], n]), n, names[-1])
            for n in self.missing(element, names)
        ]
        for child in element:
            if isinstance(child.tag, str) and len(child):
                out += self.required_problems(child, [*names, _local(child.tag)])
        return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _missing_problem(field: str, name: str, parent: str) -> Problem:
    return Problem(
        field,
        f"<{parent}> must contain <{name}>, and the file has none",
        f"map {field} in fields (with default(...) if a case may lack it)",
    )


def _xsd_checker(path: Path) -> Checker:
    xsd = _Xsd(path)
    roots = sorted(n for n in xsd.elements if n)
    try:
        from lxml import etree
    except ImportError:  # pragma: no cover - zeep depends on lxml
        return _required_elements_checker(xsd, roots)
    try:
        schema = etree.XMLSchema(etree.parse(str(path)))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise ContractError(f"{path.name} is not a usable XSD: {exc}") from None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

    def check(data: bytes) -> list[Problem]:
        try:
            parse_xml(data)  # refuses a DOCTYPE or entity declaration before lxml sees it
            document = etree.fromstring(data, parser)
        except (FormatError, etree.XMLSyntaxError) as exc:
            return [Problem("", f"not well-formed XML: {exc}")]
        if document.tag not in xsd.elements:
            return [_root_problem(document.tag, roots)]
        if schema.validate(document):
            return []
        # lxml names the first fault of an element only (and for xs:all every element still
        # allowed, not the required one), so required elements are also looked up directly.
        out = xsd.required_problems(document, [document.tag])
        for error in schema.error_log:
            message = re.sub(r"^Element '[^']*': ", "", error.message).strip().rstrip(".")
            if "Missing child element" in message and out:
                continue
            field = _dotted(error.path or "")
            if "not expected" in message:
                out.append(
                    Problem(
                        field,
                        f"<{field.rsplit('.', 1)[-1]}> is not in the agency's layout",
                        f"remove {field} from fields, or correct its name",
                    )
                )
            else:
                out.append(Problem(field, message, f"transform {field} so the value fits"))
        return out

    return check


def _root_problem(tag: str, roots: list[str]) -> Problem:
    return Problem(
        "",
        f"the root element is <{tag}>, the agency expects <{' or '.join(roots)}>",
        f"set xml_root to {roots[0] if roots else 'the root element of the XSD'}",
    )


def _required_elements_checker(xsd: _Xsd, roots: list[str]) -> Checker:
    def check(data: bytes) -> list[Problem]:
        try:
            root = parse_xml(data)
        except FormatError as exc:
            return [Problem("", str(exc))]
        if root.tag not in xsd.elements:
            return [_root_problem(root.tag, roots)]
        return xsd.required_problems(root, [root.tag])

    return check


# --------------------------------------------------------------------------------------- JSON


def _json_schema_checker(path: Path) -> Checker:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except (ValueError, SchemaError) as exc:
        raise ContractError(f"{path.name} is not a usable JSON Schema: {exc}") from None
    validator = Draft202012Validator(schema)

    def check(data: bytes) -> list[Problem]:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return [Problem("", f"not valid JSON: {exc}")]
        out: list[Problem] = []
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.absolute_path)
            instance = error.instance if isinstance(error.instance, Mapping) else {}
            if error.validator == "required":
                for name in error.validator_value:
                    if name not in instance:
                        field = f"{where}.{name}" if where else name
                        out.append(
                            Problem(
                                field,
                                "the agency requires it and the file has none",
                                f"map {field} in fields (with default(...) if a case may lack it)",
                            )
                        )
            elif error.validator == "additionalProperties":
                known = set((error.schema or {}).get("properties", {}))
                for name in instance:
                    if name not in known:
                        field = f"{where}.{name}" if where else name
                        out.append(
                            Problem(
                                field,
                                "not in the agency's layout",
                                f"remove {field} from fields, or correct its name",
                            )
                        )
            else:
                out.append(Problem(where, error.message, f"transform {where} so the value fits"))
        return out

    return check


# ---------------------------------------------------------------------------------------- CSV


@dataclass(frozen=True)
class CsvColumn:
    name: str
    required: bool = False
    values: tuple[str, ...] = ()
    pattern: str | None = None
    max_length: int | None = None
    meaning: str = ""


@dataclass(frozen=True)
class CsvLayout:
    """A CSV layout file: what an agency's batch expects of each column."""

    source: str
    columns: tuple[CsvColumn, ...]
    delimiter: str = ";"
    rows: int | None = None  # data rows per file; None: any number

    @classmethod
    def load(cls, path: Path) -> CsvLayout:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ContractError(f"{path.name} is not valid YAML: {exc}") from None
        raw = data.get("columns")
        if not isinstance(raw, dict) or not raw:
            raise ContractError(f"{path.name}: `columns:` must map each column name to its rules")
        columns = []
        for name, rules in raw.items():
            rules = rules or {}
            unknown = set(rules) - {"required", "values", "pattern", "max_length", "meaning"}
            if unknown:
                raise ContractError(
                    f"{path.name}: columns.{name}: unknown rule {sorted(unknown)[0]!r} "
                    "(use required, values, pattern, max_length, meaning)"
                )
            columns.append(
                CsvColumn(
                    str(name),
                    bool(rules.get("required", False)),
                    tuple(str(v) for v in rules.get("values") or ()),
                    rules.get("pattern"),
                    rules.get("max_length"),
                    str(rules.get("meaning", "")),
                )
            )
        delimiter = str(data.get("delimiter", ";"))
        if len(delimiter) != 1:
            raise ContractError(f"{path.name}: delimiter must be one character")
        rows = data.get("rows")
        return cls(path.name, tuple(columns), delimiter, int(rows) if rows is not None else None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def check(self, data: bytes) -> list[Problem]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return [Problem("", f"not UTF-8 text: {exc}")]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        try:
            table = [row for row in reader if row]
        except csv.Error as exc:
            return [Problem("", f"line {reader.line_num}: {exc}")]
        if not table:
            return [Problem("", "no header row")]
        header, rows = table[0], table[1:]
        out: list[Problem] = []
        for name in header:
            if name not in self.names:
                out.append(
                    Problem(
                        name,
                        f"column {name} is not in the agency's layout",
                        f"remove {name} from fields, or correct its name",
                    )
                )
        if self.rows is not None and len(rows) != self.rows:
            out.append(Problem("", f"{len(rows)} data row(s); the layout wants {self.rows}"))
        for number, row in enumerate(rows, start=2):
            if len(row) > len(header):
                out.append(Problem("", f"line {number}: more values than the header has columns"))
                continue
            values = dict(zip(header, row, strict=False))
            for column in self.columns:
                out += self._check_value(column, values.get(column.name, ""), number)
        return out

    def _check_value(self, column: CsvColumn, value: str, line: int) -> list[Problem]:
        name = column.name
        at = f" (line {line})" if self.rows != 1 else ""
        if value == "":
            if not column.required:
                return []
            return [
                Problem(
                    name,
                    f"column {name} is required{at} and the file has no value for it",
                    f"map {name} in fields (with default(...) if a case may lack it)",
                )
            ]
        fix = f"transform {name} so the value fits"
        if column.values and value not in column.values:
            return [Problem(name, f"{value!r} is not one of {', '.join(column.values)}{at}", fix)]
        if column.pattern and not re.fullmatch(column.pattern, value):
            return [Problem(name, f"{value!r} does not match {column.pattern}{at}", fix)]
        if column.max_length is not None and len(value) > column.max_length:
            return [Problem(name, f"{len(value)} characters, at most {column.max_length}{at}", fix)]
        return []


__all__ = ["CASE_CONTRACTS", "Checker", "ContractError", "CsvLayout", "Problem", "load_checker"]
