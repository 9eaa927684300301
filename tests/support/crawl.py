"""Shared test helpers: every page a visitor can reach, fetched over HTTP and kept for the
checkers (the Nu HTML Checker over the saved files, axe-core in Chromium).

The crawler follows the links a page offers and submits its GET forms (the pre-check questions)
the way a consumer who did their part would answer them; POSTs (filing, replying, signing in) are
the test's own steps, saved with `Pages.keep`."""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import lxml.html
import requests

VNU = Path(__file__).resolve().parent.parent / "browser" / "node_modules" / "vnu-jar" / "build"
VNU = VNU / "dist" / "vnu.jar"

# never followed: downloads (files, the model letter), the API, assets, and signing out
SKIP = re.compile(
    r"^/(static|api)/|/files/\d+$|\.txt$|^/admin/logout$|^/metrics$|^/(healthz|readyz)$"
)
YES = ("contacted_trader", "trader_is_business", "departed_from_belgium")


@dataclass
class Page:
    url: str  # the path (and query) it was fetched at, or posted to
    status: int
    html: str
    method: str = "GET"
    state: str = ""  # what the test did to get it ("form with errors"); "" for a crawled link


@dataclass
class Pages:
    base: str
    pages: list[Page] = field(default_factory=list)

    def keep(self, response: requests.Response, state: str = "") -> Page:
        split = urlsplit(response.url)
        path = split.path + (f"?{split.query}" if split.query else "")
        page = Page(
            path, response.status_code, response.text, response.request.method or "GET", state
        )
        self.pages.append(page)
        return page

    def crawl(self, session: requests.Session, start: list[str], inside: str, limit: int) -> None:
        """Every page under `inside` reachable from `start` by links and GET forms, fetched a
        few at a time (the web app runs several workers)."""
        visited: set[str] = set()  # per visitor: what one may see, another may not
        level = list(dict.fromkeys(start))
        with ThreadPoolExecutor(4) as pool:
            while level:
                fresh = [p for p in level if p not in visited and not SKIP.search(urlsplit(p).path)]
                visited.update(fresh)
                found: list[str] = []
                for response in pool.map(lambda p: session.get(self.base + p, timeout=30), fresh):
                    if "text/html" not in response.headers.get("Content-Type", ""):
                        continue
                    page = self.keep(response)
                    assert len(self.pages) < limit, f"more than {limit} pages: a link loop?"
                    found += [f for f in links(page, self.base) if f.startswith(inside)]
                level = [f for f in dict.fromkeys(found) if f not in visited]


def links(page: Page, base: str) -> list[str]:
    """The same-site paths a page links to, and its GET forms submitted as a consumer would."""
    try:
        tree = lxml.html.fromstring(page.html)
    except Exception:
        return []
    out = []
    here = base + page.url
    for a in tree.xpath("//a[@href][not(@download)]"):
        target = urlsplit(urljoin(here, a.get("href")))
        if target.netloc == urlsplit(base).netloc:
            out.append(target.path + (f"?{target.query}" if target.query else ""))
    for form in tree.xpath("//form[not(@method) or translate(@method,'GET','get')='get']"):
        target = urlsplit(urljoin(here, form.get("action") or page.url))
        if target.netloc != urlsplit(base).netloc:
            continue
        out.append(target.path + "?" + urlencode(answers(form)))
        out.append(target.path + "?" + urlencode(answers(form, yes=())))  # the advice instead
    return out


def answers(form, yes: tuple[str, ...] = YES) -> list[tuple[str, str]]:
    """A GET form filled in: hidden values kept, yes to the questions in `yes` (by default: the
    consumer did their part) and no elsewhere, a Brussels postal code, the first choice of a
    list."""
    values: list[tuple[str, str]] = []
    radios: dict[str, list[str]] = {}
    for field_ in form.xpath(".//input[@name]|.//select[@name]"):
        name, kind = field_.get("name"), (field_.get("type") or "text").lower()
        if field_.tag == "select":
            options = field_.xpath(".//option/@value")
            values.append((name, options[0] if options else ""))
        elif kind == "radio":
            radios.setdefault(name, []).append(field_.get("value") or "")
        elif kind in ("hidden", "text", "search", "number"):
            value = field_.get("value") or ("1000" if "postcode" in name else "")
            values.append((name, value))
    for name, options in radios.items():
        wanted = "yes" if name.removeprefix("a_") in yes else "no"
        values.append((name, wanted if wanted in options else options[0]))
    return values


def nu_check(folder: Path) -> list[dict]:
    """The Nu HTML Checker's errors over every .html file in `folder`, in one run."""
    command = ["java", "-Xss8m", "-jar", str(VNU), "--errors-only", "--skip-non-html"]
    run = subprocess.run(
        [*command, "--format", "json", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(run.stderr or run.stdout or '{"messages": []}')
    return [m for m in report["messages"] if m.get("type") in ("error", "non-document-error")]
