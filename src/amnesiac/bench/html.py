"""RESULTS.html: the same report as RESULTS.md, as one self-contained page with the plots inline.

The Markdown that :func:`amnesiac.bench.report.write_report` writes uses a small subset
(headings, pipe tables, bullet lists, fenced code, paragraphs, ``**bold**``, ```code```,
links, and images alone on a line), and this module turns exactly that subset into HTML, so the
two files always hold the same tables. Images are read from beside the report and inlined as
PNG data URIs; the page has no script and fetches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from amnesiac._io import atomic_write_text
from amnesiac.html_report.markup import esc, page, png_data_uri

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_NUMERIC = re.compile(r"^[-+]?\d[\d.,]*(\s*±\s*[\d.]+)?(\s*\(.*\))?%?$")


def html_path(md_path: Path) -> Path:
    """Where the HTML twin of a Markdown report goes: the same name, ending ``.html``."""
    return md_path.with_suffix(".html")


def inline(text: str) -> str:
    """One line of Markdown text as HTML: escaped, then ```code```, ``**bold**`` and links.

    Example:
        >>> inline("**a** `<b>` [c](d.md)")
        '<b>a</b> <code>&lt;b&gt;</code> <a href="d.md">c</a>'
    """
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{esc(part[1:-1])}</code>")
            continue
        s = esc(part)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        s = re.sub(
            r"\[([^\]]+)\]\(([^)\s]+)\)",
            lambda m: f'<a href="{_safe_href(m.group(2))}">{m.group(1)}</a>',
            s,
        )
        out.append(s)
    return "".join(out)


def _safe_href(href: str) -> str:
    """A link target, kept only if relative or http(s) (``href`` is already escaped)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", href) and not href.startswith(("http:", "https:")):
        return "#"
    return href


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(inner)]


def _table(lines: Sequence[str]) -> str:
    """A pipe table (header, separator, rows) as an HTML table."""
    header = _cells(lines[0])
    body = [_cells(line) for line in lines[2:]] if len(lines) > 1 else []
    head = "".join(f"<th>{inline(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _td(text: str) -> str:
    cls = ' class="num"' if _NUMERIC.match(text) else ""
    return f"<td{cls}>{inline(text)}</td>"


def _image(line: str, image_dir: Path) -> str:
    """The image of a ``![alt](src)`` line inlined from ``image_dir``, or a note where it is
    missing."""
    alt, src = line[2:-1].split("](", 1)
    path = image_dir / src
    if "/" in src or "\\" in src or not path.is_file() or path.suffix.lower() != ".png":
        return f'<p class="note">(plot {esc(src)} not found beside the report)</p>'
    uri = png_data_uri(path.read_bytes())
    return f'<img class="plot" src="{esc(uri)}" alt="{esc(alt or src)}">'


def _blocks(lines: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """The Markdown's blocks as ``(kind, lines)``: code, heading, table, list, images (those
    that follow each other), para."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            yield "code", list(lines[i + 1 : j])
            i = j + 1
        elif _HEADING.match(line):
            yield "heading", [line]
            i += 1
        elif line.lstrip().startswith("|"):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            yield "table", list(lines[i:j])
            i = j
        elif line.startswith("- "):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(("- ", "  ")) and lines[j].strip()):
                j += 1
            yield "list", list(lines[i:j])
            i = j
        elif _IMAGE.match(line.strip()):  # images in a row (blank lines between) go together
            j, images = i, []
            while j < len(lines) and (not lines[j].strip() or _IMAGE.match(lines[j].strip())):
                if lines[j].strip():
                    images.append(lines[j].strip())
                j += 1
            yield "images", images
            i = j
        else:
            j = i + 1
            while j < len(lines) and lines[j].strip() and not _starts_block(lines[j]):
                j += 1
            yield "para", list(lines[i:j])
            i = j


def _starts_block(line: str) -> bool:
    return bool(
        line.startswith(("```", "- ", "|")) or _HEADING.match(line) or _IMAGE.match(line.strip())
    )


def _list(lines: Sequence[str]) -> str:
    items: list[str] = []
    for line in lines:
        if line.startswith("- "):
            items.append(line[2:])
        else:
            items[-1] += " " + line.strip()
    return "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>"


def markdown_to_html(lines: Sequence[str], image_dir: Path) -> str:
    """The body HTML of a report written in the subset above; images read from ``image_dir``."""
    out = []
    for kind, block in _blocks(lines):
        if kind == "code":
            out.append(f"<pre><code>{esc(chr(10).join(block))}</code></pre>")
        elif kind == "heading":
            marks, text = block[0].split(" ", 1)
            out.append(f"<h{len(marks)}>{inline(text)}</h{len(marks)}>")
        elif kind == "table":
            out.append(_table(block))
        elif kind == "list":
            out.append(_list(block))
        elif kind == "images":
            pictures = [_image(line, image_dir) for line in block]
            out.append(f'<div class="plots">{"".join(pictures)}</div>')
        else:
            out.append(f"<p>{inline(' '.join(s.strip() for s in block))}</p>")
    return "\n".join(out)


def write_results_html(lines: Sequence[str], image_dir: Path, path: Path) -> Path:
    """Write the HTML twin of a Markdown report (``lines``) to ``path``; return ``path``."""
    title = next((m.group(2) for m in map(_HEADING.match, lines) if m), "Benchmark results")
    atomic_write_text(path, page(title, markdown_to_html(lines, image_dir)))
    return path
