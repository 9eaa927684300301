"""Bodies' names in sentences: every sentence the front desk, the tracking page and the mails
build with a body's name, for every body of mappings/agencies/ in every language, puts the name
with its article ("au Service de médiation", "zum Ombudsdienst", "naar de ...") and never bare
after a preposition ("à Service", "zu Ombudsdienst", "naar Consumentenombudsdienst")."""

from __future__ import annotations

import re

import pytest

from mappings.engine import check_agency
from mappings.names import ARTICLES, forms
from tests.support.sentences import (
    LANGUAGES,
    agencies,
    bodies,
    catalog,
    catalog_sentences,
    mail_sentences,
    timeline_sentences,
)

# The prepositions after which a name needs its article (or a contraction that holds one).
PREPOSITIONS = {
    "fr": ("à", "À", "vers", "de", "De", "par", "pour", "avec", "auprès de", "chez", "envoyé"),
    "nl": ("naar", "van", "aan", "bij", "door", "met", "voor", "Verstuurd"),
    "de": ("zu", "an", "von", "bei", "mit", "für", "durch", "auf", "gesendet an"),
    "en": ("to", "from", "of", "by", "with", "for", "To"),
}
# An article that a contraction must replace.
UNCONTRACTED = {
    "fr": (r"\bà le\b", r"\bà les\b", r"\bde le\b", r"\bde les\b", r"\bde l' ", r"\bla [AEIOUÉ]"),
    "de": (r"\bzu dem\b", r"\bzu der\b", r"\bvon dem\b", r"\ban dem\b", r"\bzu die\b"),
    "nl": (),
    "en": (),
}


def bare_name_problems(sentence: str, lang: str, name: str, article: str) -> list[str]:
    """Where `sentence` uses `name` the way no native speaker would."""
    if article == "none":
        return []
    flat = sentence.replace("\u00a0", " ").replace("\u202f", " ")
    found = []
    for prep in PREPOSITIONS[lang]:
        if re.search(rf"(?<![\w']){re.escape(prep)}\s+{re.escape(name)}", flat):
            found.append(f"bare after {prep!r}")
    # a name opening a sentence without its article, unless it stands as a label ("X: ...")
    if re.search(rf"(^|[.!?]\s+|\n-?\s*){re.escape(name)}(?!\s*[:·]|\s*$)", flat):
        found.append("bare at the start of a sentence")
    for pattern in UNCONTRACTED[lang]:
        if re.search(pattern, flat):
            found.append(f"uncontracted article ({pattern})")
    return found


def test_every_body_gives_its_article_in_every_language():
    assert len(agencies()) == 39
    for agency_id, mapping in bodies():
        assert set(mapping.grammar) == set(LANGUAGES), agency_id
        for lang in LANGUAGES:
            assert mapping.grammar[lang]["article"] in ARTICLES[lang], (agency_id, lang)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_no_sentence_puts_a_body_name_bare_after_a_preposition(lang):
    other = next(m for _id, m in bodies() if m.grammar["fr"]["article"] == "l'").forms(lang)
    problems = []
    checked = 0
    for agency_id, mapping in bodies():
        f = mapping.forms(lang)
        article = mapping.grammar[lang]["article"]
        sentences = [
            *catalog_sentences(lang, f),
            *mail_sentences(lang, f, other),
            *timeline_sentences(lang, f),
        ]
        for sentence in sentences:
            checked += 1
            for problem in bare_name_problems(sentence, lang, f.name, article):
                problems.append(f"{agency_id}: {problem}: {sentence[:160]!r}")
    assert checked > 39 * 40
    assert not problems, "\n".join(problems[:30])


def test_the_check_itself_finds_the_reviewed_mistakes():
    """The rule above fails the sentences the language review found (so it can fail)."""
    assert bare_name_problems(
        "Vous avez répondu à Service de médiation.", "fr", "Service de médiation", "le"
    )
    assert bare_name_problems(
        "Ihre Akte ist unterwegs zu Ombudsdienst für Bahnreisende.",
        "de",
        "Ombudsdienst für Bahnreisende",
        "der",
    )
    assert bare_name_problems(
        "Uw dossier is onderweg naar Consumentenombudsdienst.",
        "nl",
        "Consumentenombudsdienst",
        "de",
    )
    assert bare_name_problems(
        "Consumentenombudsdienst heeft uw dossier.", "nl", "Consumentenombudsdienst", "de"
    )
    assert not bare_name_problems(
        "Consumentenombudsdienst: ontvangen.", "nl", "Consumentenombudsdienst", "de"
    )
    assert not bare_name_problems(
        "Votre dossier est transmis à Ombudsfin.", "fr", "Ombudsfin", "none"
    )


@pytest.mark.parametrize(
    ("lang", "grammar", "name", "expected"),
    [
        (
            "fr",
            {"article": "le"},
            "Service de médiation",
            ("le Service de médiation", "au Service de médiation", "du Service de médiation"),
        ),
        (
            "fr",
            {"article": "l'"},
            "Ombudsman des assurances",
            (
                "l'Ombudsman des assurances",
                "à l'Ombudsman des assurances",
                "de l'Ombudsman des assurances",
            ),
        ),
        ("fr", {"article": "la"}, "FSMA", ("la FSMA", "à la FSMA", "de la FSMA")),
        ("fr", {"article": "none"}, "Ombudsfin", ("Ombudsfin", "à Ombudsfin", "d'Ombudsfin")),
        (
            "de",
            {"article": "der"},
            "Ombudsdienst",
            ("der Ombudsdienst", "zum Ombudsdienst", "vom Ombudsdienst"),
        ),
        ("de", {"article": "die"}, "FASNK", ("die FASNK", "zur FASNK", "von der FASNK")),
        (
            "de",
            {
                "article": "das",
                "after_article": "Europäische Zentrum",
                "dative": "Europäischen Zentrum",
            },
            "Europäisches Zentrum",
            ("das Europäische Zentrum", "zum Europäischen Zentrum", "vom Europäischen Zentrum"),
        ),
        ("nl", {"article": "het"}, "FAVV", ("het FAVV", "naar het FAVV", "van het FAVV")),
        (
            "nl",
            {"article": "de"},
            "Ombudsdienst",
            ("de Ombudsdienst", "naar de Ombudsdienst", "van de Ombudsdienst"),
        ),
        ("en", {"article": "the"}, "Police", ("the Police", "to the Police", "of the Police")),
    ],
)
def test_the_forms_of_a_name(lang, grammar, name, expected):
    f = forms(name, lang, grammar)
    assert (f.the, f.to, f.of) == expected
    assert f.The[0].isupper() and str(f) == name


def test_german_dative_and_accusative_follow_the_gender():
    der = forms(
        "Föderaler Ombudsdienst",
        "de",
        {
            "article": "der",
            "after_article": "Föderale Ombudsdienst",
            "dative": "Föderalen Ombudsdienst",
        },
    )
    assert (der.dat, der.acc) == ("dem Föderalen Ombudsdienst", "den Föderalen Ombudsdienst")
    die = forms("Zentrale Meldestelle", "de", {"article": "die", "dative": "Zentralen Meldestelle"})
    assert (die.the, die.dat, die.acc) == (
        "die Zentrale Meldestelle",
        "der Zentralen Meldestelle",
        "die Zentrale Meldestelle",
    )


def test_validate_refuses_an_article_that_does_not_fit_the_french_name(tmp_path):
    source = (agencies()["ombudsman-insurance"].source).read_text()
    wrong = tmp_path / "ombudsman-insurance.yaml"
    wrong.write_text(source.replace('fr: {article: "l\'"}', "fr: {article: le}"))
    _mapping, problems = check_agency(wrong, {})
    assert [p.key for p in problems] == ["grammar.fr.article"]
    assert "Fix: Use `l'`" in str(problems[0]) or "use `l'`" in str(problems[0]).lower()


def test_catalog_sentences_use_only_known_forms_of_a_name():
    """A translation may pick another form than the English (`{agency.dat}` for `{agency.to}`),
    but only one that exists, and only the fields the code passes."""
    known = {"agency", "from_agency", "to", "acc", "reference", "status", "languages", "language"}
    fields = re.compile(r"\{(\w+)(?:\.(\w+))?\}")
    for lang in LANGUAGES:
        for msgid, msgstr in catalog(lang).items():
            if "{" not in msgid:
                continue
            for name, attr in fields.findall(msgstr):
                assert name in known, (lang, msgid, name)
                assert not attr or attr in ("name", "the", "The", "to", "of", "dat", "acc"), (
                    lang,
                    msgid,
                    attr,
                )
            either = {"to", "acc"}  # the same list of bodies, in the form the sentence needs
            used = {n for n, _a in fields.findall(msgstr)} - either
            assert used == {n for n, _a in fields.findall(msgid)} - either, (lang, msgid)
