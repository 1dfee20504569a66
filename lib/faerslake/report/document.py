"""A tiny document model (sections of paragraphs, tables and images) and its
two renderers, so the Markdown and the HTML report never disagree."""

from __future__ import annotations

import base64
import html
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
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)  # str (paragraph) | Table | Image


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


def render_markdown(title: str, sections: list[Section]) -> str:
    """The document as Markdown (pipe tables); text is written without raw HTML (:func:`_md_inline`)."""
    out = [f"# {_md_inline(title)}", ""]
    for sec in sections:
        out += [f"## {_md_inline(sec.title)}", ""]
        for b in sec.blocks:
            if isinstance(b, Table):
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


def render_html(title: str, sections: list[Section]) -> str:
    """The document as one self-contained HTML page (all text escaped)."""
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 8px}"
        "td{text-align:right}td:first-child{text-align:left}th{background:#eee}"
        "code{font-size:90%}</style>",
        "</head><body>", f"<h1>{html.escape(title)}</h1>",
    ]
    for sec in sections:
        out.append(f"<h2>{html.escape(sec.title)}</h2>")
        for b in sec.blocks:
            if isinstance(b, Table):
                out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.header)
                           + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                        for row in b.rows]
                out.append("</tbody></table>")
            elif isinstance(b, Image):
                out.append(f'<p><img src="{html.escape(b.html_src())}" alt="{html.escape(b.alt)}"></p>')
            else:
                out.append(f"<p>{_inline_html(str(b))}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
