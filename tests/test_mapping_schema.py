"""The declared shape of a mapping file (contracts/agency-mapping.schema.json) and the guide its
errors point to (mappings/agencies/README.md)."""

from __future__ import annotations

import re

import pytest
import yaml
from jsonschema import Draft202012Validator

from mappings import AGENCIES_DIR, MAPPINGS_DIR
from mappings.problems import SECTIONS
from mappings.schema import SCHEMA_FILE, jsonable, mapping_schema

FILES = sorted(AGENCIES_DIR.glob("*.yaml"))
GUIDE = AGENCIES_DIR / "README.md"


def test_the_schema_is_valid_draft_2020_12():
    schema = mapping_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert SCHEMA_FILE.parent == MAPPINGS_DIR.parent / "contracts"


def test_there_are_twenty_connected_agencies_and_referral_bodies_for_the_rest():
    """Twenty through an adapter to their own system, one in the hosted workspace."""
    files = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in FILES}
    connected = [a for a, data in files.items() if "adapter" in data]
    referral = [a for a, data in files.items() if "referral" in data]
    workspace = [a for a in connected if files[a]["adapter"]["kind"] == "workspace"]
    assert len(connected) == 21 and workspace == ["mediateur-wallonie"]
    assert len(referral) >= 18
    assert set(connected) | set(referral) == set(files)


def test_a_mapping_is_either_connected_or_a_referral_body_never_both_nor_neither():
    validator = Draft202012Validator(mapping_schema())
    data = yaml.safe_load((AGENCIES_DIR / "jep.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(jsonable(data))) == []
    neither = {k: v for k, v in data.items() if k != "referral"}
    assert list(validator.iter_errors(jsonable(neither)))
    both = {**data, "adapter": {"kind": "rest"}, "fields": {}, "statuses": {}, "sla": {}}
    assert list(validator.iter_errors(jsonable(both)))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_schema_accepts_every_real_mapping_file(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [e.message for e in Draft202012Validator(mapping_schema()).iter_errors(jsonable(data))]
    assert errors == []


def _objects(node, where="#"):
    """(where, schema) of every object schema with fixed keys."""
    if isinstance(node, dict):
        if "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{where}/{i}")


def test_every_block_with_fixed_keys_refuses_unknown_ones():
    """Only `adapter:` is open: its keys belong to the transport and its config schema."""
    open_blocks = [
        where
        for where, node in _objects(mapping_schema())
        if node.get("additionalProperties") is not False
    ]
    assert open_blocks == ["#/properties/adapter"]


def test_every_top_level_key_is_described_and_has_a_section_in_the_guide():
    schema = mapping_schema()
    for key, node in schema["properties"].items():
        assert node.get("description"), key
        assert key in SECTIONS, key


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a markdown text."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_every_section_a_fix_points_to_exists_in_the_guide():
    anchors = _anchors(GUIDE.read_text(encoding="utf-8"))
    assert SECTIONS.issubset(anchors), sorted(SECTIONS - anchors)


def test_the_guide_names_every_key_of_the_schema():
    text = GUIDE.read_text(encoding="utf-8")

    def keys(node):
        if isinstance(node, dict):
            yield from node.get("properties", {})
            for value in node.values():
                yield from keys(value)
        elif isinstance(node, list):
            for value in node:
                yield from keys(value)

    missing = sorted(
        {k for k in keys(mapping_schema()) if f"`{k}" not in text and f"{k}:" not in text}
    )
    assert missing == []
