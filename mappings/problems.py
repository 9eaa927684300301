"""What is wrong with a mapping file, said so its author can fix it without reading code.

A `Problem` names the file, the line, the key (a dotted path such as `delivery.retry.cap`), what
is wrong and the fix; a fix that needs explaining points to a section of the mapping authors'
guide, `mappings/agencies/README.md`. Checks collect every problem they find; `MappingError`
carries all of them at once, so one run of `loket mappings validate` (or one failed start) shows
everything there is to fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

GUIDE = "mappings/agencies/README.md"

# The sections of the guide that fixes point to (their GitHub anchors). tests/test_mapping_schema.py
# checks that each exists in the guide.
SECTIONS = frozenset(
    {
        "id",
        "names",
        "grammar",
        "body",
        "handles",
        "languages",
        "contract",
        "simulator",
        "adapter",
        "fields",
        "sources",
        "transforms",
        "dates",
        "statuses",
        "information_requests",
        "sla",
        "durations",
        "poll",
        "prechecks",
        "referral",
        "delivery",
        "environment-variables",
        "the-agencys-contract",
        "how-to-add-an-agency",
        "the-whole-file",
    }
)


def guide(section: str) -> str:
    """`mappings/agencies/README.md#section`, for a fix text."""
    if section not in SECTIONS:
        raise ValueError(f"the guide has no section {section!r}")
    return f"{GUIDE}#{section}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one mapping file. str() gives `file:line: key: problem. Fix: fix`."""

    file: str
    line: int | None
    key: str
    problem: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.problem}. Fix: {self.fix}"


class MappingError(ValueError):
    """One or more mapping files are wrong; `problems` holds every problem found.

    str() gives one problem per line. `file`, `key`, `problem`, `fix` and `line` are those of the
    first problem, for callers that show one.
    """

    def __init__(self, problems: Iterable[Problem]):
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("a MappingError needs at least one problem")
        first = self.problems[0]
        self.file, self.key, self.problem, self.fix, self.line = (
            first.file,
            first.key,
            first.problem,
            first.fix,
            first.line,
        )
        if len(self.problems) == 1:
            text = str(first)
        else:
            files = {p.file for p in self.problems}
            where = next(iter(files)) if len(files) == 1 else f"{len(files)} mapping files"
            text = f"{len(self.problems)} problems in {where}:\n" + "\n".join(
                f"  {p}" for p in self.problems
            )
        super().__init__(text)
