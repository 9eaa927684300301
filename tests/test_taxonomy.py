"""The consumer-facing taxonomy texts are complete and consistent in the four languages.

The web front desk shows `explain` before the actions, so a missing language, a leftover
placeholder or a translation that states a different deadline or amount is a bug a consumer sees.
"""

import re
import string

import pytest
from jsonschema import Draft202012Validator

from hub import taxonomy
from hub.config import CONTRACTS_DIR
from tests.support.openapi import SPEC

LANGS = ("nl", "fr", "de", "en")
OPTIONS = {"question", "complaint", "report", "mediation"}
MAX_EXPLAIN = 600
UNFINISHED = re.compile(r"TODO|XXX|FIXME")
LETTERS_DIR = CONTRACTS_DIR / "letters"
# every model letter has a slot for these (hub/letters.py fills them in)
PLACEHOLDERS = {"trader_name", "consumer_name", "customer_number", "date", "deadline"}
LETTER_IDS = sorted({p.name.split(".")[0] for p in LETTERS_DIR.glob("*.md")})

DOMAINS = taxonomy.load(taxonomy.DOMAINS_FILE)
SUBAREAS = [
    pytest.param(spec, id=f"{area}.{code}")
    for area, area_spec in DOMAINS["areas"].items()
    for code, spec in area_spec["subareas"].items()
]


def test_the_taxonomy_has_sub_areas():
    assert len(SUBAREAS) >= 40


@pytest.mark.parametrize("area", sorted(DOMAINS["areas"]))
def test_every_area_has_a_label_in_all_languages(area):
    """A comma in an unquoted flow mapping silently cuts a label short; this catches it."""
    label = DOMAINS["areas"][area]["label"]
    assert set(label) == set(LANGS), f"languages {sorted(label)}"
    assert all(isinstance(label[lang], str) and label[lang].strip() for lang in LANGS), label


@pytest.mark.parametrize("spec", SUBAREAS)
def test_every_sub_area_has_label_and_explain_in_all_languages(spec):
    for key in ("label", "explain"):
        texts = spec.get(key) or {}
        assert set(texts) == set(LANGS), f"{key}: languages {sorted(texts)}"
        for lang in LANGS:
            assert isinstance(texts[lang], str) and texts[lang].strip(), f"{key}.{lang} is empty"


@pytest.mark.parametrize("spec", SUBAREAS)
def test_explain_texts_are_short(spec):
    for lang, text in spec["explain"].items():
        assert len(text) <= MAX_EXPLAIN, f"explain.{lang} has {len(text)} characters"


@pytest.mark.parametrize("spec", SUBAREAS)
def test_explain_states_the_same_numbers_in_every_language(spec):
    """Deadlines, amounts and regulation numbers must not drift between translations."""
    numbers = {lang: set(re.findall(r"\d+", text)) for lang, text in spec["explain"].items()}
    assert len({frozenset(n) for n in numbers.values()}) == 1, numbers


@pytest.mark.parametrize("spec", SUBAREAS)
def test_options_are_known_case_kinds(spec):
    options = spec["options"]
    assert options, "a sub-area must offer at least one action"
    assert set(options) <= OPTIONS, sorted(set(options) - OPTIONS)


def all_texts():
    for area, area_spec in DOMAINS["areas"].items():
        yield area, area_spec["label"]
        for code, spec in area_spec["subareas"].items():
            yield f"{area}.{code}.label", spec["label"]
            yield f"{area}.{code}.explain", spec.get("explain") or {}
    for path in sorted(LETTERS_DIR.glob("*.md")):
        yield path.name, {path.name.split(".")[1]: path.read_text(encoding="utf-8")}


def test_no_text_is_left_unfinished():
    unfinished = [
        f"{where}.{lang}"
        for where, texts in all_texts()
        for lang, text in texts.items()
        if UNFINISHED.search(text)
    ]
    assert unfinished == []


@pytest.mark.parametrize("letter", LETTER_IDS)
def test_each_letter_has_the_same_slots_in_every_language(letter):
    assert len(LETTER_IDS) >= 4
    slots = {}
    for lang in LANGS:
        path = LETTERS_DIR / f"{letter}.{lang}.md"
        assert path.is_file(), f"{path} is missing"
        text = path.read_text(encoding="utf-8")
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        filled = text.format(**{name: f"<{name}>" for name in used})
        assert "{" not in filled and "}" not in filled
        slots[lang] = used
    assert slots["en"] >= PLACEHOLDERS, f"missing {PLACEHOLDERS - slots['en']}"
    assert all(used == slots["en"] for used in slots.values()), slots


def domains_response_schema() -> dict:
    get = SPEC["paths"]["/api/v1/domains"]["get"]
    return get["responses"]["200"]["content"]["application/json"]["schema"]


@pytest.mark.parametrize("lang", LANGS)
def test_domains_api_serves_explain_and_options_in_the_asked_language(client, lang):
    body = client.get(f"/api/v1/domains?lang={lang}").get_json()
    schema = domains_response_schema()
    Draft202012Validator(schema).validate(body)
    documented = set(schema["properties"]["domains"]["items"]["properties"])
    assert all(set(item) == documented for item in body["domains"]), "served keys != contract"
    served = {d["code"]: d for d in body["domains"]}
    assert len(served) == len(SUBAREAS)
    for area, area_spec in DOMAINS["areas"].items():
        for code, spec in area_spec["subareas"].items():
            item = served[f"{area}.{code}"]
            assert item["explain"] == spec["explain"][lang]
            assert item["options"] == spec["options"]
