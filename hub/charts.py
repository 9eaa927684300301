"""Charts for the public statistics: SVG drawn by matplotlib on the server, made fit to inline.

matplotlib writes CSS in `style` attributes and a `<style>` element; the front desk's CSP
(`style-src 'self'`) would drop both, so every declaration becomes the SVG presentation
attribute of the same name. The SVG gets `role="img"`, a `<title>` and a `<desc>` (its
accessible name and summary), ids prefixed per chart (several charts share one page), and no
metadata, so it is valid inline in HTML. Each chart is followed on the page by a table of the
same figures; the chart is a picture of the table, not the only source.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from lxml import etree

SVG_NS = "http://www.w3.org/2000/svg"
XLINK = "{http://www.w3.org/1999/xlink}href"
PALETTE = ("#1f4e79", "#e07b00", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#546e7a")
FONT = "DejaVu Sans, Arial, sans-serif"


def _figure(height: float):
    import matplotlib

    matplotlib.use("svg", force=False)
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text (readable, searchable)
    matplotlib.rcParams["svg.hashsalt"] = "loket"  # the same figures draw the same bytes
    fig = Figure(figsize=(7.5, height), dpi=72)
    return fig, fig.add_subplot()


def _font(value: str) -> dict[str, str]:
    """`font: 10px 'DejaVu Sans'` as the attributes font-size and font-family."""
    m = re.match(r"\s*(?:(normal|italic|bold|\d00)\s+)*([\d.]+px)\s+(.*)", value)
    if not m:
        return {}
    return {"font-size": m.group(2), "font-family": FONT}


def _presentational(svg: bytes, prefix: str, title: str, desc: str) -> str:
    root = etree.fromstring(svg, etree.XMLParser(resolve_entities=False, no_network=True))
    for el in list(root.iter()):
        if not isinstance(el.tag, str):
            continue
        local = etree.QName(el).localname
        if local in ("metadata", "style"):
            el.getparent().remove(el)
            continue
        style = el.attrib.pop("style", None)
        if style:
            for decl in style.split(";"):
                name, _, value = decl.partition(":")
                name, value = name.strip(), value.strip()
                if not name:
                    continue
                if name == "font":
                    el.attrib.update(_font(value))
                else:
                    el.set(name, value)
        if "id" in el.attrib:
            el.set("id", f"{prefix}-{el.get('id')}")
        for attr in ("clip-path", "mask", "fill"):
            v = el.get(attr)
            if v and v.startswith("url(#"):
                el.set(attr, f"url(#{prefix}-{v[5:]}")
        href = el.get(XLINK)
        if href and href.startswith("#"):
            el.set(XLINK, f"#{prefix}-{href[1:]}")
    for attr in ("version",):
        root.attrib.pop(attr, None)
    root.set("role", "img")
    root.set("aria-labelledby", f"{prefix}-title {prefix}-desc")
    root.set("class", "chart")
    t = etree.Element(f"{{{SVG_NS}}}title", id=f"{prefix}-title")
    t.text = title
    d = etree.Element(f"{{{SVG_NS}}}desc", id=f"{prefix}-desc")
    d.text = desc
    root.insert(0, d)
    root.insert(0, t)
    text = etree.tostring(root, encoding="unicode")
    return text


def _svg(fig, prefix: str, title: str, desc: str) -> str:
    out = io.BytesIO()
    fig.savefig(
        out,
        format="svg",
        bbox_inches="tight",
        metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
    )
    return _presentational(out.getvalue(), prefix, title, desc)


def bars(
    prefix: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    unit: str = "",
    percent: bool = False,
) -> str:
    """A horizontal bar chart (one bar per label, values written at the bars' ends); a value
    None (hidden: too few) draws no bar."""
    fig, ax = _figure(max(1.6, 0.42 * len(labels) + 0.9))
    shown = [v or 0 for v in values]
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, shown, color=PALETTE[0], height=0.6)
    ax.set_yticks(ys, labels=list(labels))
    top = max(shown, default=0) or 1
    for y, v in zip(ys, values, strict=True):
        if v is not None:
            text = f"{v:.0f}%" if percent else f"{v:g}{unit}"
            ax.text(v + top * 0.01, y, text, va="center", fontsize=10)
    ax.set_xlim(0, 100 if percent else top * 1.15)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=10)
    return _svg(fig, prefix, title, desc)


def stacked(
    prefix: str,
    title: str,
    desc: str,
    columns: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
) -> str:
    """Vertical bars per column (month), stacked by series (area), with a legend."""
    fig, ax = _figure(3.6)
    xs = list(range(len(columns)))
    bottom = [0] * len(columns)
    for i, (name, values) in enumerate(series):
        ax.bar(xs, values, bottom=bottom, label=name, color=PALETTE[i % len(PALETTE)])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(xs, labels=list(columns), rotation=45, ha="right")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    if series:
        ax.legend(fontsize=9, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, prefix, title, desc)
