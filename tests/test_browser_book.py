"""The built book in headless Chromium: every page at desktop (1400 px) and phone (420 px) width.

Run by ``make browser`` (part of ``make test``), which builds ``_build/html`` first if it is missing.
Fails on a JavaScript console error, math MathJax left untypeset, content wider than its column with
no scroll container of its own (or scrolling that does not show), a reference or exercise link that
does not resolve, an exercise number typed as text, an image that does not load, stray Markdown and
emoji that need a font the reader may lack (``ftutils.browser``). Screenshots of every page:
``_build/screenshots/index.html``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ftutils import browser

REPO = Path(__file__).resolve().parents[1]
HTML = REPO / "_build" / "html"
SHOTS = REPO / "_build" / "screenshots"


@pytest.fixture(scope="module")
def audited():
    if not (HTML / "index.html").is_file():
        pytest.skip(f"no built book in {HTML}: run `make browser` (it builds the HTML first) or `make html`")
    if browser.find_chromium() is None:
        message = "no Chromium: install the system package (Debian/Ubuntu: `apt-get install -y chromium`)"
        if os.environ.get("FTUTILS_BROWSER_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return browser.audit(HTML, screenshots=SHOTS, progress=True)


def test_every_page_reads_well_at_desktop_and_phone_width(audited):
    problems, reports = audited
    assert {r.width for r in reports} == set(browser.WIDTHS.values())
    assert len({r.page for r in reports}) == len(browser.pages(HTML))
    shown = "\n".join(str(p) for p in problems[:60])
    assert not problems, f"{len(problems)} problem(s) a reader would see (screenshots: {SHOTS / 'index.html'}):\n{shown}"


def test_every_exercise_is_listed_on_the_assignments_page_with_a_working_link(audited):
    _, reports = audited
    exercise_ids = {i for r in reports if r.page.startswith(("executed/", "book/")) for i in r.ids
                    if re.fullmatch(r"ex-[a-z0-9]+-\d+", i)}
    assignments = next(r for r in reports if r.page == "book/assignments.html")
    linked = {href.rsplit("#", 1)[1] for href, text in assignments.links if "#" in href and text.startswith("Exercise")}
    assert exercise_ids and exercise_ids <= linked, sorted(exercise_ids - linked)
