"""The shape of a mapping file, declared in `contracts/agency-mapping.schema.json`.

The schema is data an integrator can read; this module holds it against a parsed file and turns
each JSON Schema error into a `Problem` an author can act on: the line (from the YAML node tree),
the dotted key, what is wrong in words, and the fix ("did you mean `poll`?", the allowed keys or
values, the expected type, an example, the guide's section). Every error is reported, not the
first one.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from mappings import CONTRACTS_DIR
from mappings.problems import SECTIONS, Problem, guide

SCHEMA_FILE = CONTRACTS_DIR / "agency-mapping.schema.json"

PathPart = str | int


@lru_cache(maxsize=2)
def mapping_schema(path: Path = SCHEMA_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    Draft202012Validator.check_schema(schema)
    return schema


# libyaml where it is installed: a mapping file is parsed once per check, at every start-up.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text: str) -> tuple[Any, Lines]:
    """Parse once: the data (as `yaml.safe_load` gives it) and where each key is. Raises
    yaml.YAMLError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, Lines(node)


class Lines:
    """Where each key of a YAML document is, from its node tree."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    @classmethod
    def of(cls, text: str) -> Lines:
        try:
            return read_yaml(text)[1]
        except yaml.YAMLError:
            return cls(None)

    def _walk(self, path: Sequence[PathPart]) -> tuple[yaml.Node | None, int | None]:
        """The node at `path` and the line of its key (or item); stops at the deepest found."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                for key, value in reversed(node.value):  # YAML keeps the last of a repeat
                    if str(key.value) == str(part):
                        node, line = value, key.start_mark.line + 1
                        break
                else:
                    return None, line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return None, line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return None, line
        return node, line

    def line(self, *path: PathPart) -> int | None:
        """The line of the key at `path` (1-based), or of its deepest parent that exists."""
        return self._walk(path)[1]

    def duplicates(self) -> Iterator[tuple[tuple[PathPart, ...], int, int]]:
        """(path, first line, repeated line) of every key given twice in one block: YAML keeps
        the last silently, so the first would be ignored without a word."""

        def walk(node: yaml.Node, path: tuple[PathPart, ...]) -> Iterator[Any]:
            if isinstance(node, yaml.MappingNode):
                seen: dict[str, int] = {}
                for key, value in node.value:
                    name, line = str(key.value), key.start_mark.line + 1
                    if name in seen:
                        yield (*path, name), seen[name], line
                    seen.setdefault(name, line)
                    yield from walk(value, (*path, name))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    yield from walk(item, (*path, i))

        if self.root is not None:
            yield from walk(self.root, ())


def dotted(path: Sequence[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def section(path: Sequence[PathPart]) -> str:
    """The guide's section for a key: its top-level block's."""
    top = str(path[0]) if path else ""
    return top if top in SECTIONS else "the-whole-file"


def jsonable(value: Any) -> Any:
    """YAML may give keys that are numbers or booleans (`200: received`); JSON keys are text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


TYPE_WORDS = {
    "object": "a block of `key: value` lines",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def found(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a block"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{type(value).__name__} {value!r}"  # a date, for one


def flow(value: Any) -> str:
    """A value as it would be written in the file, on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000)
    return text.removesuffix("...\n").strip()


def one_of(values: Sequence[Any]) -> str:
    words = [str(v) for v in values]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _example(schema: Mapping[str, Any], key: str | None) -> str:
    examples = schema.get("examples") or []
    if not examples:
        return ""
    shown = f"{key}: {flow(examples[0])}" if key else flow(examples[0])
    return f"write e.g. `{shown}`"


def _fix(text: str, path: Sequence[PathPart], anchor: str | None = None) -> str:
    see = f"see {guide(anchor or section(path))}"
    return f"{text} ({see})" if text else see


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        merged = dict(root["$defs"][ref.split("/")[-1]])
        merged.update({k: v for k, v in schema.items() if k != "$ref"})
        return merged
    return schema


def _problems(
    error: ValidationError, file: str, lines: Lines, root: Mapping[str, Any]
) -> Iterator[Problem]:
    path = list(error.absolute_path)
    key = dotted(path)
    leaf = str(path[-1]) if path and isinstance(path[-1], str) else None
    schema = _resolve(error.schema, root) if isinstance(error.schema, Mapping) else {}
    value = error.instance
    what = schema.get("title") or "value"
    validator = error.validator

    if validator == "additionalProperties" and isinstance(value, Mapping):
        allowed = sorted(schema.get("properties") or {})
        for extra in sorted(k for k in value if k not in allowed):
            close = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.6)
            hint = f"did you mean `{close[0]}`? " if close else ""
            where = "in this file" if not path else f"in `{key}`"
            anchor = close[0] if close and not path and close[0] in SECTIONS else None
            yield Problem(
                file,
                lines.line(*path, extra),
                dotted([*path, extra]),
                f"unknown key `{extra}` {where}",
                _fix(f"{hint}the keys here are {one_of(allowed)}", path, anchor),
            )
        return
    if validator == "required":
        for missing in error.validator_value:
            if isinstance(value, Mapping) and missing in value:
                continue
            prop = _resolve((schema.get("properties") or {}).get(missing, {}), root)
            example = _example(prop, missing)
            yield Problem(
                file,
                lines.line(*path),
                dotted([*path, missing]),
                f"`{missing}` is missing",
                _fix(f"add `{missing}:`" + (f"; {example}" if example else ""), [*path, missing]),
            )
        return
    if validator == "type":
        expected = error.validator_value
        kinds = [expected] if isinstance(expected, str) else list(expected)
        problem = f"expected {one_of([TYPE_WORDS[k] for k in kinds])}, found {found(value)}"
        yield Problem(file, lines.line(*path), key, problem, _fix(_example(schema, leaf), path))
        return
    if validator == "enum":
        allowed = [str(v) for v in error.validator_value]
        close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`? " if close else ""
        yield Problem(
            file,
            lines.line(*path),
            key,
            f"unknown {schema.get('title') or 'value'} {value!r}",
            _fix(f"{hint}use {one_of(allowed)}", path),
        )
        return
    if validator == "pattern":
        if path and error.relative_schema_path and "propertyNames" in error.relative_schema_path:
            # propertyNames errors point at the block; the name itself is the instance
            yield Problem(
                file,
                lines.line(*path, str(value)),
                dotted([*path, str(value)]),
                f"{value!r} is not a valid {what}",
                _fix(schema.get("description") or "", path),
            )
            return
        example = _example(schema, leaf)
        text = (schema.get("description") or "").rstrip(".")
        text = text[:1].lower() + text[1:]
        fix = "; ".join(t for t in (text, example) if t)
        yield Problem(
            file, lines.line(*path), key, f"cannot read the {what} {value!r}", _fix(fix, path)
        )
        return
    if validator in ("minItems", "minProperties", "minLength"):
        yield Problem(
            file,
            lines.line(*path),
            key,
            "is empty",
            _fix(_example(schema, leaf) or "give at least one", path),
        )
        return
    if validator == "uniqueItems":
        yield Problem(
            file, lines.line(*path), key, "lists a value twice", _fix("list each once", path)
        )
        return
    if validator in ("minimum", "exclusiveMinimum"):
        bound = error.validator_value
        more = "at least" if validator == "minimum" else "more than"
        yield Problem(
            file,
            lines.line(*path),
            key,
            f"{value!r} is too small",
            _fix(f"give a number {more} {bound}", path),
        )
        return
    yield Problem(file, lines.line(*path), key, error.message, _fix("", path))


def schema_problems(data: Any, file: str | Path, lines: Lines) -> list[Problem]:
    """Every way `data` (a parsed mapping file) differs from the declared schema, in file order."""
    root = mapping_schema()
    validator = Draft202012Validator(root)
    out: list[Problem] = []
    for error in validator.iter_errors(jsonable(data)):
        for problem in _problems(error, str(file), lines, root):
            if problem not in out:  # `required` reports each missing key once per missing key
                out.append(problem)
    for path, first, again in lines.duplicates():
        out.append(
            Problem(
                str(file),
                again,
                dotted(path),
                f"this key is given twice (first on line {first}); only the last one counts",
                _fix("keep one", path),
            )
        )
    return sorted(out, key=lambda p: (p.line or 0, p.key))
