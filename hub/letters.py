"""Model letters to the trader (contracts/letters/): which letter fits a problem, which deadline
it gives, and its paragraphs with the slots filled in.

The deadline is the one the refusing service's advice states (`letters.yaml` names it per
service); when several services ask the consumer to complain first, the longest wins, so that
coming back after it satisfies every one of them. A letter file holds one paragraph per line:
the page shows each as a paragraph the browser wraps, and the download keeps them as lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from hub.config import CONTRACTS_DIR

LETTERS_DIR = CONTRACTS_DIR / "letters"
SLOT = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Letter:
    id: str
    deadline: str  # a key of letters.yaml's deadlines
    paragraphs: tuple[str, ...]  # slots filled in; "**...**" marks the subject line

    def text(self) -> str:
        """The letter as plain text: one paragraph per line, a blank line between them."""
        return "\n\n".join(p.replace("**", "") for p in self.paragraphs) + "\n"


@lru_cache(maxsize=2)
def index(directory: Path = LETTERS_DIR) -> dict[str, Any]:
    with open(directory / "letters.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def letter_for(domain: str, directory: Path = LETTERS_DIR) -> str:
    """The id of the letter for a problem area (area.subarea)."""
    for entry in index(directory)["letters"]:
        if any(fnmatchcase(domain, pattern) for pattern in entry["domains"]):
            return entry["id"]
    raise LookupError(f"no letter in letters.yaml matches {domain}; add a '*' entry")


def deadline_for(agency_ids: Iterable[str], directory: Path = LETTERS_DIR) -> str:
    """The deadline the letter gives: the longest of the refusing services' own."""
    data = index(directory)
    keys = [data["agencies"].get(a, data["default_deadline"]) for a in agency_ids]
    if not keys:
        return data["default_deadline"]
    return max(keys, key=lambda k: data["deadlines"][k]["days"])


def deadline_words(key: str, lang: str, directory: Path = LETTERS_DIR) -> dict[str, str]:
    entry = index(directory)["deadlines"][key]
    return {"said": entry["said"][lang], "within": entry["within"][lang]}


def known(letter_id: str, deadline: str, directory: Path = LETTERS_DIR) -> bool:
    data = index(directory)
    return deadline in data["deadlines"] and any(e["id"] == letter_id for e in data["letters"])


def source(letter_id: str, lang: str, directory: Path = LETTERS_DIR) -> str:
    return (directory / f"{letter_id}.{lang}.md").read_text(encoding="utf-8")


def render(
    letter_id: str,
    lang: str,
    deadline: str,
    blanks: Mapping[str, str],
    directory: Path = LETTERS_DIR,
) -> Letter:
    """The letter in `lang`: `{deadline}` becomes the deadline's words, every other slot the
    blank given for it (a slot without one raises KeyError: a letter uses only known slots)."""
    values = {**blanks, "deadline": deadline_words(deadline, lang, directory)["within"]}
    paragraphs = tuple(
        SLOT.sub(lambda m: values[m.group(1)], block.strip())
        for block in re.split(r"\n\s*\n", source(letter_id, lang, directory))
        if block.strip()
    )
    return Letter(letter_id, deadline, paragraphs)
