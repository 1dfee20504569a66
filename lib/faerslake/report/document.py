"""A tiny document model (sections of paragraphs, tables and images) and its
two renderers, so the Markdown and the HTML report never disagree."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    """A picture: Markdown links ``src`` (the file written beside the report);
    HTML embeds ``data`` as a data URI when given (the page then stands alone),
    else links ``src``."""

    src: str
    alt: str
    data: bytes | None = None
    mime: str = "image/png"

    def html_src(self) -> str:
        if self.data is None:
            return self.src
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")


@dataclass
class Bullets:
    """A list of short lines (Markdown ``-`` items, an HTML ``<ul>``)."""

    items: list[str]


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)  # str (paragraph) | Table | Image | Bullets


def slug(title: str) -> str:
    """A section's anchor, as GitHub makes it from a Markdown heading (so the
    Markdown table of contents links work there too): lower case, characters
    other than letters, digits, ``_``, ``-`` and spaces dropped, spaces as ``-``."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def section_ids(sections: list[Section]) -> list[str]:
    """Each section's anchor (:func:`slug`); a repeated one gets ``-1``, ``-2``
    as GitHub numbers repeated headings."""
    seen: dict[str, int] = {}
    out = []
    for sec in sections:
        base = slug(sec.title) or "section"
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.append(base if n == 0 else f"{base}-{n}")
    return out


def _md_inline(text: str) -> str:
    """Text for Markdown with no raw HTML: ``<`` and ``>`` become ``&lt;`` and
    ``&gt;`` outside code spans (study descriptions, cohort names and file
    names are quoted in the report; a viewer that renders HTML in Markdown
    must not run them).

    Code spans are found as the HTML renderer finds them (split on backticks)
    and written back so that a Markdown parser finds the same ones: an
    unmatched last backtick is written escaped, empty spans are dropped and
    adjacent spans are merged (two backticks in a row would open a
    double-backtick span)."""
    parts = text.split("`")
    pieces: list[tuple[bool, str]] = []  # (is code, text), no empty ones, kinds alternating
    for i, part in enumerate(parts):
        code = i % 2 == 1 and i < len(parts) - 1
        if i % 2 == 1 and not code:  # an unmatched backtick: literal text
            part = "`" + part
        if not part:
            continue
        if pieces and pieces[-1][0] == code:
            pieces[-1] = (code, pieces[-1][1] + part)
        else:
            pieces.append((code, part))
    return "".join(f"`{p}`" if code else _md_text(p) for code, p in pieces)


def _md_text(text: str) -> str:
    """Text outside code spans: backslashes and backticks escaped (so no text
    can change where a code span starts or ends), ``<`` and ``>`` as entities."""
    return (text.replace("\\", "\\\\").replace("`", "\\`")
            .replace("<", "&lt;").replace(">", "&gt;"))


def _md_cell(s: str) -> str:
    return _md_inline(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: list[Section], subtitle: str = "") -> str:
    """The document as Markdown (pipe tables): the title, the subtitle, a
    table of contents (links to the headings' anchors, :func:`section_ids`),
    then the sections; text is written without raw HTML (:func:`_md_inline`)."""
    out = [f"# {_md_inline(title)}", ""]
    if subtitle:
        out += [_md_inline(subtitle), ""]
    ids = section_ids(sections)
    if sections:
        out += ["Contents:", ""]
        out += [f"- [{_md_cell(sec.title)}](#{sid})" for sec, sid in zip(sections, ids, strict=True)]
        out.append("")
    for sec in sections:
        out += [f"## {_md_inline(sec.title)}", ""]
        for b in sec.blocks:
            if isinstance(b, Bullets):
                out += [f"- {_md_inline(item)}" for item in b.items]
            elif isinstance(b, Table):
                out.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
                out.append("|" + "|".join("---" for _ in b.header) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            elif isinstance(b, Image):
                out.append(f"![{b.alt}]({b.src})")
            else:
                out.append(_md_inline(str(b)))
            out.append("")
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(title: str, sections: list[Section], subtitle: str = "") -> str:
    """The document as one self-contained HTML page (all text escaped): the
    title, the subtitle, a table of contents linking each section's ``id``
    (:func:`section_ids`), then the sections."""
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px}"
        "td{text-align:right}td:first-child{text-align:left}th{background:#eee}"
        "code{font-size:90%}img{max-width:100%;height:auto}.wide{overflow-x:auto}.subtitle{font-size:110%;color:#444}nav li{margin:.1em 0}"
        ".warning{color:#a00;font-weight:bold}"
        "@media print{nav{display:none}.wide{overflow:visible}h2{page-break-after:avoid}table,img{page-break-inside:avoid}}</style>",
        "</head><body>", f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        out.append(f'<p class="subtitle">{_inline_html(subtitle)}</p>')
    ids = section_ids(sections)
    if sections:
        out.append('<nav><p>Contents:</p><ul>' + "".join(
            f'<li><a href="#{sid}">{html.escape(sec.title)}</a></li>' for sec, sid in zip(sections, ids, strict=True))
            + "</ul></nav>")
    for sec, sid in zip(sections, ids, strict=True):
        out.append(f'<h2 id="{sid}">{html.escape(sec.title)}</h2>')
        for b in sec.blocks:
            if isinstance(b, Bullets):
                out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
            elif isinstance(b, Table):
                # a wide table scrolls inside its box instead of running off the page
                out.append('<div class="wide"><table><thead><tr>'
                           + "".join(f"<th>{html.escape(h)}</th>" for h in b.header) + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                        for row in b.rows]
                out.append("</tbody></table></div>")
            elif isinstance(b, Image):
                out.append(f'<p><img src="{html.escape(b.html_src())}" alt="{html.escape(b.alt)}"></p>')
            elif str(b).startswith("Warning:"):
                out.append(f'<p class="warning">{_inline_html(str(b))}</p>')
            else:
                out.append(f"<p>{_inline_html(str(b))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
