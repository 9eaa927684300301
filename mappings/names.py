"""A body's name as it stands in a sentence, per language: with its article and the article's
contractions ("au Service de médiation", "zum Ombudsdienst", "naar de Consumentenombudsdienst").

The mapping gives, per language, the name (`names:`) and how it takes an article (`grammar:`):
the definite article (or `none` for a name used without one, such as "Ombudsfin"), and for
German names that begin with an adjective the name as it reads after an article ("Föderale
Ombudsdienst ...") and after a dative article ("Föderalen Ombudsdienst ..."). `forms()` turns
that into the handful of forms sentences need; a sentence picks one by name:

    {agency.the}  the name with its article, inside a sentence   le Service ... / het FAVV
    {agency.The}  the same at the start of a sentence             Le Service ... / Het FAVV
    {agency.to}   "to" the body, with the preposition each        au Service ... / zum Ombudsdienst
                  language uses for a destination (à, zu, naar)   / naar de ... / to the ...
    {agency.of}   "of"/"from" the body (de, von, van)             du Service ... / vom Ombudsdienst
    {agency.dat}  German dative, no preposition (the others: .the) dem Ombudsdienst
    {agency.acc}  German accusative (an ...), others: .the        den Ombudsdienst
    {agency.name} the bare name, for a label ("Service: X")

`str(forms)` is the bare name, so a form object can stand wherever a label did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The article each language allows in `grammar.<lang>.article`; `none`: the name takes none.
ARTICLES: Mapping[str, tuple[str, ...]] = {
    "nl": ("de", "het", "none"),
    "fr": ("le", "la", "l'", "les", "none"),
    "de": ("der", "die", "das", "none"),
    "en": ("the", "none"),
}
FORMS = ("name", "the", "The", "to", "of", "dat", "acc")

# French: à/de with the definite article.
_FR_TO = {"le": "au ", "la": "à la ", "l'": "à l'", "les": "aux ", "none": "à "}
_FR_OF = {"le": "du ", "la": "de la ", "l'": "de l'", "les": "des ", "none": "de "}
# German: dative and accusative articles by the nominative one; zu/von contract with dem/der.
_DE_DAT = {"der": "dem", "die": "der", "das": "dem"}
_DE_ACC = {"der": "den", "die": "die", "das": "das"}
_DE_TO = {"der": "zum", "die": "zur", "das": "zum"}
_DE_OF = {"der": "vom", "die": "von der", "das": "vom"}

_VOWELS = "aeiouyhàâäéèêëîïôöûüœæ"


@dataclass(frozen=True)
class NameForms:
    """The forms of one body's name in one language (see the module's docstring)."""

    name: str
    the: str
    The: str
    to: str
    of: str
    dat: str
    acc: str

    def __str__(self) -> str:
        return self.name


def starts_with_vowel(name: str) -> bool:
    return bool(name) and name[0].lower() in _VOWELS


def forms(name: str, language: str, grammar: Mapping[str, Any] | None) -> NameForms:
    """The sentence forms of `name` in `language`, from the mapping's `grammar.<language>`
    block. Without a block the name is used bare (a body the hub no longer knows)."""
    g = grammar or {}
    article = str(g.get("article") or "none")
    if language == "fr":
        if article == "none":
            of = ("d'" if starts_with_vowel(name) else "de ") + name
            return NameForms(name, name, _cap(name), "à " + name, of, "à " + name, name)
        the = ("l'" if article == "l'" else article + " ") + name
        to, of = _FR_TO[article] + name, _FR_OF[article] + name
        return NameForms(name, the, _cap(the), to, of, to, the)
    if language == "de":
        if article == "none":
            return NameForms(name, name, _cap(name), "zu " + name, "von " + name, name, name)
        weak = str(g.get("after_article") or name)  # "Föderale Ombudsdienst" after "der"
        dative = str(g.get("dative") or weak)  # "Föderalen Ombudsdienst" after "dem"
        accusative = dative if article == "der" else weak  # den Föderalen / die Zentrale
        the = f"{article} {weak}"
        return NameForms(
            name,
            the,
            _cap(the),
            f"{_DE_TO[article]} {dative}",
            f"{_DE_OF[article]} {dative}",
            f"{_DE_DAT[article]} {dative}",
            f"{_DE_ACC[article]} {accusative}",
        )
    to_word, of_word = {"nl": ("naar", "van"), "en": ("to", "of")}.get(language, ("to", "of"))
    the = name if article == "none" else f"{article} {name}"
    return NameForms(name, the, _cap(the), f"{to_word} {the}", f"{of_word} {the}", the, the)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def grammar_problems(names: Mapping[str, str], grammar: Mapping[str, Any]) -> list[str]:
    """What cannot be right in a file's `grammar` given its names (the schema checks the
    shape): a French elided article before a consonant, or a full one before a vowel."""
    out = []
    fr_name, fr = names.get("fr") or "", grammar.get("fr") or {}
    article = fr.get("article")
    if article == "l'" and fr_name and not starts_with_vowel(fr_name):
        out.append(
            f"fr: `l'` stands before a vowel or a mute h, and {fr_name!r} starts with a "
            "consonant. Fix: use `le` or `la`"
        )
    if article in ("le", "la") and starts_with_vowel(fr_name):
        out.append(
            f"fr: {article!r} before {fr_name!r}, which starts with a vowel, reads "
            f'"{article} {fr_name}". Fix: use `l\'`'
        )
    de = grammar.get("de") or {}
    if de.get("article") == "none" and (de.get("after_article") or de.get("dative")):
        out.append(
            "de: `after_article` and `dative` are forms after an article, and `article` "
            "is `none`. Fix: give the article or drop them"
        )
    return out


_NBSP = "\u00a0"


def spaced(text: str, language: str) -> str:
    """French puts a non-breaking space before ? ; : ! (so a line never starts with "?"); texts
    from the data files (rights, questions, advice) get it here, the catalogs have it written."""
    if language != "fr" or not text:
        return text
    import re

    text = re.sub(r" ([?;:!])", _NBSP + r"\1", text)
    return re.sub(r"(?<=[^\s\u00a0(/\d:])([?;!])(?=\s|$)", _NBSP + r"\1", text)
