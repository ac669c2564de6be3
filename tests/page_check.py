"""Open an HTML page in headless Chromium and read it as a person's browser shows it.

Debian's ``chromium`` package (``make setup`` installs it as root), driven by Playwright for
Python with ``executable_path`` pointing at it: Playwright's own browser download is never used.
``AMNESIAC_CHROMIUM`` overrides where the browser is.

Used by ``tests/test_html.py``, and as a script by ``make docs/demo-report.png``::

    python tests/page_check.py PAGE.html SCREENSHOT.png

which runs the same checks (no console error, nothing fetched, every image decoded, a screenshot
that is not blank) and writes the screenshot.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Names the browser goes by on Debian and elsewhere.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The Chromium executable: ``AMNESIAC_CHROMIUM``, else the first on ``PATH``."""
    given = os.environ.get("AMNESIAC_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def why_no_browser() -> str | None:
    """Why the page cannot be opened here (what to install), or ``None`` when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: pip install -e '.[dev]' (or make setup)"
    if chromium_path() is None:
        return (
            "Chromium is not installed: apt-get install chromium (make setup does it as root), "
            "or point AMNESIAC_CHROMIUM at a Chromium executable"
        )
    return None


@dataclass
class PageCheck:
    """What the browser saw.

    Attributes:
        console_errors: Console messages of type error and uncaught page errors.
        requests: URLs the page asked for besides itself (should be none).
        images: Per ``<img>``: ``alt``, ``complete``, ``naturalWidth``, ``naturalHeight``.
        values: Per element with ``data-key``: ``(key, data-value or None, shown text)``.
        instances: Per forget instance's figure: its ``data-*`` attributes.
        screenshot: PNG bytes of the viewport.
    """

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    values: list[tuple[str, str | None, str]] = field(default_factory=list)
    instances: list[dict[str, str]] = field(default_factory=list)
    screenshot: bytes = b""


_READ = """() => ({
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete,
    naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight})),
  values: Array.from(document.querySelectorAll('[data-key]')).map(e =>
    [e.dataset.key, e.hasAttribute('data-value') ? e.dataset.value : null,
     e.textContent.trim()]),
  instances: Array.from(document.querySelectorAll('figure.inst')).map(f =>
    Object.assign({}, f.dataset)),
})"""


def check_page(
    path: Path, *, width: int = 1200, height: int = 1500, full_page: bool = False
) -> PageCheck:
    """Load ``path`` in headless Chromium and read what it shows."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError(why_no_browser() or "no Chromium")
    out = PageCheck()
    page_url = Path(path).resolve().as_uri()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on(
                "console",
                lambda m: out.console_errors.append(m.text) if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: out.console_errors.append(f"page error: {e}"))
            page.on(
                "request",
                lambda r: (
                    out.requests.append(r.url)
                    if r.url != page_url and not r.url.startswith("data:")
                    else None
                ),
            )
            page.goto(page_url, wait_until="load")
            page.evaluate(
                "() => Promise.all(Array.from(document.images).map(i => i.decode().catch(() => 0)))"
            )
            seen = page.evaluate(_READ)
            out.images = seen["images"]
            out.values = [tuple(v) for v in seen["values"]]
            out.instances = seen["instances"]
            out.screenshot = page.screenshot(full_page=full_page, type="png")
        finally:
            browser.close()
    return out


def is_blank(png: bytes) -> bool:
    """Whether a screenshot shows (next to) nothing: one colour, or almost all of it one."""
    from PIL import Image

    grey = Image.open(io.BytesIO(png)).convert("L")
    hist = grey.histogram()
    return max(hist) > 0.995 * sum(hist)


def problems(check: PageCheck) -> list[str]:
    """What a person would call broken in the page the browser showed."""
    found = [f"console error: {e}" for e in check.console_errors]
    found += [f"fetched {u}" for u in check.requests]
    found += [
        f"image {i['alt']!r} did not decode" for i in check.images if not i["naturalWidth"] > 0
    ]
    if is_blank(check.screenshot):
        found.append("the screenshot is blank")
    return found


def main(argv: list[str]) -> int:
    """``page_check.py PAGE.html SCREENSHOT.png``: check the page, write its screenshot."""
    if len(argv) != 2:
        print("usage: python tests/page_check.py PAGE.html SCREENSHOT.png", file=sys.stderr)
        return 2
    reason = why_no_browser()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    check = check_page(Path(argv[0]))
    bad = problems(check)
    for line in bad:
        print(line, file=sys.stderr)
    if bad:
        return 1
    Path(argv[1]).write_bytes(check.screenshot)
    print(
        f"{argv[0]}: {len(check.images)} images decoded, {len(check.values)} values, no console "
        f"error; screenshot {argv[1]} ({len(check.screenshot) / 1024:.0f} KiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
