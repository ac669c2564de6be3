"""HTML building blocks shared by the request page and the benchmark page: escaping, tables,
PNG data URIs and the page shell (inline CSS, no script, nothing fetched from a network)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.figure import Figure

#: The page's style sheet, inlined into every page.
CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  color: #1f2328; margin: 0 auto; padding: 16px 24px 48px; max-width: 1180px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; }
.hash { word-break: break-all; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
.note { color: var(--muted); font-size: 13px; margin: 4px 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(164px, 1fr));
  gap: 8px; }
figure.inst { margin: 0; border: 2px solid var(--line); border-radius: 6px; padding: 6px;
  font-size: 12px; background: #fff; }
figure.inst.forgotten { border-color: #8fd19e; }
figure.inst.kept { border-color: #ff8182; }
figure.inst img { display: block; margin: 0 auto 4px; image-rendering: pixelated;
  background: #000; }
figure.inst figcaption div { overflow-wrap: anywhere; }
img.plot { max-width: 100%; height: auto; border: 1px solid var(--line); }
.plots { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
.plots img.plot { max-width: min(100%, 560px); }
.plots.wide img.plot { max-width: 100%; }
details summary { cursor: pointer; color: var(--muted); }
"""


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def attrs(**values: Any) -> str:
    """`` name="value"`` pairs (escaped; ``data_x`` becomes ``data-x``; ``None`` left out)."""
    return "".join(
        f' {name.rstrip("_").replace("_", "-")}="{esc(v)}"'
        for name, v in values.items()
        if v is not None
    )


def fmt(value: Any, digits: int) -> str:
    """A value as the page shows it: floats with ``digits`` decimals, ``-`` for none or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def num(value: Any, key: str, digits: int = 2) -> str:
    """A numeric ``<td>`` showing ``value`` from the report at ``key`` (a ``/`` path)."""
    return (
        f'<td class="num" data-key="{esc(key)}" data-value="{esc(json.dumps(value))}">'
        f"{esc(fmt(value, digits))}</td>"
    )


def val(value: Any, key: str, digits: int = 2, *, text: str | None = None) -> str:
    """A ``<span>`` showing ``value`` from the report at ``key`` (a ``/`` path), as ``text``
    if given."""
    shown = fmt(value, digits) if text is None else text
    return f'<span data-key="{esc(key)}" data-value="{esc(json.dumps(value))}">{esc(shown)}</span>'


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """A matplotlib figure laid out and encoded as PNG bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def img(
    uri: str,
    alt: str,
    *,
    width: int | None = None,
    height: int | None = None,
    cls: str | None = None,
) -> str:
    """An ``<img>`` of a data URI, with its alt text and size."""
    return f"<img{attrs(src=uri, alt=alt, width=width, height=height, class_=cls)}>"


def cell(
    text: str,
    *,
    key: str | None = None,
    numeric: bool = False,
    raw: bool = False,
    cls: str | None = None,
) -> str:
    """A ``<td>`` (escaped unless ``raw``); ``key`` names the report value it shows
    (``data-key``), so a test can hold the page to the JSON."""
    classes = " ".join(c for c in ("num" if numeric else None, cls) if c) or None
    body = text if raw else esc(text)
    return f"<td{attrs(class_=classes, data_key=key)}>{body}</td>"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric_from: int = 1) -> str:
    """A ``<table>``: ``header`` escaped; each row a list of ready ``<td>`` cells (see
    :func:`cell`); header columns from ``numeric_from`` on are right-aligned."""
    head = "".join(
        f"<th{attrs(class_='num' if i >= numeric_from else None)}>{esc(h)}</th>"
        for i, h in enumerate(header)
    )
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(items: Iterable[tuple[str, str]]) -> str:
    """A definition list of ``(term, ready HTML)`` pairs (terms are escaped)."""
    body = "".join(f"<dt>{esc(term)}</dt><dd>{value}</dd>" for term, value in items)
    return f'<dl class="facts">{body}</dl>'


def page(title: str, body: str) -> str:
    """A whole self-contained HTML document (no script, no external resource)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # nothing may be fetched: data URIs for the images, inline style, no script at all
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
