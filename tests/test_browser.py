"""Tests of ftutils.browser: a small synthetic site with one defect per page, opened in headless Chromium.

Each page reintroduces one defect a reader met in the built book (issue 19); the audit must name it
and nothing else, and the clean page must pass. Needs the system Chromium (Debian: ``apt-get install
chromium``); without it the browser tests skip, unless ``FTUTILS_BROWSER_REQUIRED=1`` (CI, ``make
browser``) makes them fail. The checks on the real book are in ``tests/test_browser_book.py``.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from ftutils import browser

REQUIRED = os.environ.get("FTUTILS_BROWSER_REQUIRED") == "1"


def need_chromium() -> str:
    found = browser.find_chromium()
    if found is None:
        message = ("no Chromium on this machine: install the system package (Debian/Ubuntu: "
                   "`apt-get install -y chromium`) to run the browser tests")
        if REQUIRED:
            pytest.fail(message + " (FTUTILS_BROWSER_REQUIRED=1)")
        pytest.skip(message)
    return found


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ margin: 0; font: 16px/1.5 sans-serif; }}
  article.bd-article {{ max-width: 700px; margin: 0 auto; padding: 0 8px; }}
  .scroll {{ overflow-x: auto; }}
  .cue {{ background: linear-gradient(to left, #ddd, #fff) right / 12px 100% no-repeat; }}
  pre {{ white-space: pre-wrap; overflow-wrap: anywhere; }}
</style></head>
<body><main><article class="bd-article">
<h1 id="top">{title}</h1>
{body}
</article></main></body></html>
"""

CLEAN = """
<div class="exercise admonition" id="ex-one"><p class="admonition-title">Exercise 1 (its own title may say
its number)</p><p>Do something.</p></div>
<p>A link to the exercise: <a class="reference internal" href="clean.html#ex-one">Exercise 1</a>, and to
<a href="other.html#part">a part of another page</a>.</p>
<pre>a very long line of code that wraps instead of running past the edge of the column: """ + "x" * 200 + """</pre>
<div class="scroll cue"><table><tr>""" + "<td>wide&nbsp;cell&nbsp;number&nbsp;0</td>" * 3 + """</tr></table></div>
<div class="output text_html scroll cue"><table class="dataframe"><tr>""" + "<td>a&nbsp;wide&nbsp;data&nbsp;frame</td>" * 12 + """
</tr></table></div>
<p>Plain prices such as $5 and $10 are not math.</p>
<p>A formula whose glyphs overhang its box, as MathJax's do:
<span class="math" style="display: inline-flex; overflow: hidden; width: 30px"><mjx-container style="display: block">
<mjx-math style="display: inline-block; width: 30px"><span style="display: inline-block; width: 38px">θp</span>
</mjx-math></mjx-container></span>.</p>
"""

# page name -> (what it holds, the kinds of problem the audit must report, at either width)
DEFECTS = {
    "console": ("<script>let THEBE_JS_URL = 1;</script><script>let THEBE_JS_URL = 2;</script><p>text</p>",
                {"console-error"}),
    "raw_math": (r'<p>The penalty <span class="math notranslate nohighlight">\(\lambda\|\theta\|^2\)</span> '
                 r"and $x^2$ in the text.</p>", {"raw-math"}),
    "overflow": ('<pre style="white-space: pre">' + "print('a line of code that runs past the edge') " * 6 + "</pre>",
                 {"overflow"}),
    "clipped": ('<div style="overflow: hidden"><div style="width: 1600px">cut off</div></div>'
                '<p><span class="math" style="display: inline-flex; overflow: hidden; max-width: 100%">'
                '<mjx-container style="display: block"><mjx-math style="display: inline-block; width: 2000px">'
                "a long inline formula</mjx-math></mjx-container></span></p>"
                "<table class=\"dataframe\"><tr><td>train_once({'kind': 'none', 'strength': 0}, se...</td></tr></table>",
                {"clipped"}),
    "wide_table": ('<div class="pst-scrollable-table-container scroll cue"><table><tr>'
                   + "<td>a&nbsp;very&nbsp;wide&nbsp;table&nbsp;cell</td>" * 12 + "</tr></table></div>"
                   '<div class="highlight scroll cue"><pre style="white-space: pre">'
                   + "print('a line of code that does not wrap') " * 6 + "</pre></div>", {"scrolls-sideways"}),
    "hidden_scroll": ('<div class="scroll"><span style="display: inline-block; width: 560px">an equation that '
                      "scrolls on a phone with no sign of it</span></div>", {"hidden-scroll"}),
    "references": ('<p><span class="xref std std-ref">ex-gone</span> and '
                   '<a class="reference internal" href="clean.html#ex-gone">Exercise 9</a>, and the typed '
                   "number in: see exercise 3.</p>", {"unresolved-ref"}),
    "image": ('<img src="missing.png" alt="a figure">', {"image", "console-error"}),
    "markdown": ('<p>Build the prompt with `lm_tokenizer.apply_chat_template([{"role": "user",</p>', {"markdown"}),
    "emoji": ("<p>the 🤗 Transformers library</p>", {"emoji"}),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "clean.html").write_text(PAGE.format(title="A clean page", body=CLEAN))
    (root / "other.html").write_text(PAGE.format(title="Another page", body='<p id="part">a part</p>'))
    for name, (body, _) in DEFECTS.items():
        (root / f"{name}.html").write_text(PAGE.format(title=name, body=body))
    (root / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=clean.html" />')
    (root / "_static").mkdir()
    (root / "_static" / "not_a_page.html").write_text("<p>skipped</p>")
    return root


@pytest.fixture(scope="module")
def audited(site):
    need_chromium()
    return browser.audit(site, screenshots=site.parent / "shots", timeout=60)


def test_pages_skip_sphinx_folders(site):
    names = [p.name for p in browser.pages(site)]
    assert "not_a_page.html" not in names and "index.html" not in names and "clean.html" in names


def test_the_clean_page_passes_at_both_widths(audited):
    problems, reports = audited
    assert {r.width for r in reports if r.page == "clean.html"} == set(browser.WIDTHS.values())
    assert [str(p) for p in problems if p.page in ("clean.html", "other.html")] == []


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_each_defect_is_reported_and_nothing_else(audited, name):
    problems, _ = audited
    found = {p.kind for p in problems if p.page == f"{name}.html"}
    assert found == DEFECTS[name][1], [str(p) for p in problems if p.page == f"{name}.html"]


def test_every_kind_of_defect_is_covered():
    assert set().union(*(kinds for _, kinds in DEFECTS.values())) == set(browser.KINDS)


def test_screenshots_and_their_index(audited, site):
    _, reports = audited
    shots = site.parent / "shots"
    assert all(r.screenshot is not None and r.screenshot.stat().st_size > 1000 for r in reports)
    assert {p.name for p in (shots / "420px").iterdir()} >= {"clean.png", "overflow.png"}
    index = (shots / "index.html").read_text()
    assert "overflow.html at 420 px" in index and "hidden-scroll" in index


def test_command_line_exit_codes(site, tmp_path, capsys):
    need_chromium()
    assert browser.main([str(site), "--only", "clean", "--only", "other", "--screenshots", str(tmp_path)]) == 0
    assert browser.main([str(site), "--only", "emoji", "--width", "420", "--screenshots", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "emoji.html @ 420 px: emoji:" in out and "screenshots:" in out
    assert browser.main([str(tmp_path / "nothing")]) == 2
    assert browser.main([str(site), "--screenshots", str(site)]) == 2  # would overwrite the pages it checks
    assert "holds the HTML being checked" in capsys.readouterr().err


def test_a_screenshots_folder_loses_only_the_old_screenshots(site, tmp_path):
    folder = tmp_path / "shots"
    (folder / "1400px").mkdir(parents=True)
    for name in ("1400px/old.png", "1400px/notes.txt", "index.html", "mine.txt"):
        (folder / name).write_text("x")
    browser._clear_screenshots(folder, site, [1400, 420])
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "1400px/notes.txt", "mine.txt"]
    for holding_the_html in (site, site.parent):  # e.g. `--screenshots _build` for _build/html
        with pytest.raises(ValueError, match="holds the HTML being checked"):
            browser._clear_screenshots(holding_the_html, site, [1400])
    assert (site / "clean.html").is_file()


def test_a_missing_chromium_is_a_clear_error(site, monkeypatch):
    monkeypatch.setenv("CHROMIUM", "/no/such/chromium")
    assert browser.find_chromium() is None
    with pytest.raises(browser.DevToolsError, match="apt-get install -y chromium"):
        browser.audit(site)


def test_cross_references_without_a_browser(tmp_path):
    (tmp_path / "a.html").write_text("<p id='ex-1'>")
    uri = (tmp_path / "a.html").as_uri()
    reports = [browser.PageReport("a.html", 1400, ids={"ex-1"}, links=[(uri + "#ex-1", "Exercise 1")]),
               browser.PageReport("b.html", 1400, links=[(uri + "#ex-2", "Exercise 2"),
                                                         ((tmp_path / "c.html").as_uri(), "gone")])]
    details = [p.detail for p in browser.cross_reference_problems(tmp_path, reports)]
    assert details == ["link 'Exercise 2' points to a.html#ex-2, but a.html has no element with id 'ex-2'",
                       "link 'gone' points to c.html, which does not exist"]
    assert textwrap.dedent(str(browser.Problem("a.html", 420, "image", "x"))) == "a.html @ 420 px: image: x"
