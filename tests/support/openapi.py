"""Validate real responses against the component schemas of contracts/openapi.yaml."""

import json

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from hub.config import CONTRACTS_DIR

SPEC = yaml.safe_load((CONTRACTS_DIR / "openapi.yaml").read_text())
CASE = json.loads((CONTRACTS_DIR / "case.schema.json").read_text())
_BASE = "https://loket.example/contracts/openapi.yaml"
REGISTRY = Registry().with_resources(
    [
        (
            _BASE,
            Resource.from_contents(
                {**SPEC, "$schema": "https://json-schema.org/draft/2020-12/schema"}
            ),
        ),
        ("https://loket.example/contracts/case.schema.json", Resource.from_contents(CASE)),
    ]
)


def validate(component: str, body: object) -> None:
    schema = {"$ref": f"{_BASE}#/components/schemas/{component}"}
    Draft202012Validator(schema, registry=REGISTRY).validate(body)
