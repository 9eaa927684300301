"""The front desk language review (tests/corpus/review/frontdesk-language.md, a copy of the
reviewer's notes): none of the phrases it found ("before → after") is left in what a consumer
reads: the catalogs, the consumer mails and the timeline with every body's name in them, the
templates, the taxonomy's labels and the pre-check reasons."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from hub.config import ROOT
from hub.routing import _reason
from mappings.names import spaced
from tests.support.sentences import (
    agencies,
    bodies,
    catalog,
    catalog_sentences,
    mail_sentences,
    timeline_sentences,
)

REVIEW = Path(__file__).parent / "corpus" / "review" / "frontdesk-language.md"
SECTIONS = {"French": "fr", "Dutch": "nl", "German": "de"}
_QUOTE = re.compile(r"«\s*(.+?)\s*»|\"(.+?)\"")
_ELLIPSIS = re.compile(r"\s*(?:…|\.\.\.)\s*")


def before_phrases() -> list[tuple[str, str, re.Pattern[str]]]:
    """(language, phrase, pattern) for every quoted phrase left of "→" in the review. An
    ellipsis stands for any text in between; a phrase that does not end in one must not be
    followed by more words (the fix "Was Sie jetzt tun müssen" extends "Was Sie jetzt tun")."""
    out = []
    lang = None
    for line in REVIEW.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            lang = SECTIONS.get(line[3:].strip())
            continue
        if not lang or not line.startswith("- ") or "→" not in line:
            continue
        before = line[2:].split("→", 1)[0]
        for m in _QUOTE.finditer(before):
            phrase = normal(m.group(1) or m.group(2))
            parts = [p for p in _ELLIPSIS.split(phrase) if p]
            if not parts or not re.search(r"\w", phrase):
                continue  # the typography note quotes bare punctuation: its own test below
            pattern = r".{0,300}?".join(re.escape(p) for p in parts)
            if _starts_with_a_name(parts[0], lang) and not phrase.startswith(("…", "...")):
                pattern = r"(?<![\w'] )(?<!')" + pattern  # the fix puts the article before it
            if not _ELLIPSIS.search(phrase[-2:]):
                pattern += r"(?![ ]*[\w])"
            out.append((lang, phrase, re.compile(pattern)))
    return out


def _starts_with_a_name(fragment: str, lang: str) -> bool:
    """The phrase opens with a body's name, which the fix gives its article ("Le Service ...")."""
    head = fragment.split(" ")[0]
    return any(m.name(lang).split(" ")[0] == head for _id, m in bodies())


def normal(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


@lru_cache(maxsize=4)
def readable(lang: str) -> str:
    """Everything a consumer may read in `lang`, one text per line."""
    texts: list[str] = list(catalog(lang).values())
    other = agencies()["ombudsman-insurance"].forms(lang)
    for _id, mapping in bodies():
        f = mapping.forms(lang)
        texts += catalog_sentences(lang, f)
        texts += mail_sentences(lang, f, other)
        texts += timeline_sentences(lang, f)
        for check in mapping.prechecks:
            texts.append(_reason(check, lang))
            texts += [check.text("advice", lang)]
    domains = yaml.safe_load((ROOT / "contracts" / "domains.yaml").read_text(encoding="utf-8"))

    def labels(node):
        if isinstance(node, dict):
            for value in node.values():
                if isinstance(value, dict) and lang in value and isinstance(value[lang], str):
                    yield spaced(value[lang], lang)
                yield from labels(value)
        elif isinstance(node, list):
            for item in node:
                yield from labels(item)

    texts += labels(domains)
    for template in (ROOT / "hub" / "templates" / "mail").glob(f"*.{lang}.txt"):
        texts.append(template.read_text(encoding="utf-8"))
    return "\n".join(normal(t) for t in texts)


def test_the_review_copy_is_read_whole():
    phrases = before_phrases()
    assert {lang for lang, _p, _r in phrases} == {"fr", "nl", "de"}
    assert len(phrases) >= 40
    # the ones with an ellipsis or a name in them are read as the reviewer meant
    assert any(p.startswith("Votre dossier est en route vers Service") for _l, p, _r in phrases)
    assert any(
        r.search("Was Sie jetzt tun") and not r.search("Was Sie jetzt tun müssen")
        for _l, _p, r in phrases
    )


@pytest.mark.parametrize("lang", ["fr", "nl", "de"])
def test_no_phrase_the_review_found_is_left(lang):
    corpus = readable(lang)
    assert len(corpus) > 50_000
    left = [p for code, p, pattern in before_phrases() if code == lang and pattern.search(corpus)]
    assert not left, f"{lang}: still there: {left}"


def test_french_puts_a_non_breaking_space_before_double_punctuation():
    for msgid, msgstr in catalog("fr").items():
        assert not re.search(r" [?;:!]", msgstr), (msgid, msgstr)
    for _id, mapping in bodies():
        for check in mapping.prechecks:
            assert not re.search(r" [?;:!]", _reason(check, "fr")), _reason(check, "fr")
    for template in (ROOT / "hub" / "templates" / "mail").glob("*.fr.txt"):
        assert not re.search(r" [?;:!]", template.read_text(encoding="utf-8")), template.name
