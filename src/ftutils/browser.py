"""The built book as a reader sees it: every page opened in headless Chromium, at desktop and phone width.

:func:`audit` loads each HTML page of a built book (``_build/html``) in the Chromium that the system
package manager installed (Debian: ``apt-get install chromium``; nothing here downloads a browser),
waits until MathJax has typeset the page, and reports what a reader would meet:

* ``console-error``: a JavaScript exception, a ``console.error`` or a resource that failed to load;
* ``raw-math``: math that MathJax left as TeX source (``$...$``, ``\\(...\\)``) or typeset as an error;
* ``overflow``: an element wider than the page's text column with no scroll container of its own
  (its right end is cut off, or the whole page scrolls sideways);
* ``clipped``: content cut by an ``overflow: hidden`` box, or a table cell that pandas truncated
  (``...``);
* ``scrolls-sideways``: a code block, printed output or table of the book's text that needs horizontal
  scrolling at desktop width (on a phone scrolling is allowed, if it shows);
* ``hidden-scroll``: a box that scrolls sideways with no sign of it (no scrollbar, no scroll shadow),
  e.g. a wide data frame or equation;
* ``unresolved-ref``: a cross reference Sphinx could not resolve, a link whose page or anchor does not
  exist (an exercise reference whose label is gone), or an exercise number typed as text;
* ``image``: an image that failed to load;
* ``markdown``: a stray backtick in the text (broken Markdown);
* ``emoji``: a pictograph that renders as an empty box where no emoji font is installed.

Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``), so the
standard library suffices. A full-page screenshot of every page at every width lands in the
screenshot folder, with an ``index.html`` that shows them all and lists the problems.

Run it as ``python -m ftutils.browser _build/html --screenshots _build/screenshots`` (``make browser``).

Example:
    >>> str(Problem("index.html", 420, "image", "img src=x.png did not load"))
    'index.html @ 420 px: image: img src=x.png did not load'
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import html
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["WIDTHS", "Problem", "PageReport", "DevToolsError", "find_chromium", "pages", "audit",
           "cross_reference_problems", "main"]

#: Viewport widths (CSS pixels) every page is opened at: a desktop window and a phone.
WIDTHS = {"desktop": 1400, "phone": 420}
PHONE_BELOW = 768  # widths under this are emulated as a touch phone (overlay scrollbars)
KINDS = ("console-error", "raw-math", "overflow", "clipped", "scrolls-sideways", "hidden-scroll",
         "unresolved-ref", "image", "markdown", "emoji")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SKIPPED_DIRS = {"_static", "_sources", "_images", "_downloads", "_panels_static"}
MAX_SHOT_HEIGHT = 40000  # CSS px; longer pages are cut in the screenshot (not in the checks)


class DevToolsError(RuntimeError):
    """Chromium could not be started, or did not answer a DevTools command in time."""


@dataclass(frozen=True)
class Problem:
    """One thing a reader would see wrong: on which page, at which width, what kind, and where."""

    page: str
    width: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.page} @ {self.width} px: {self.kind}: {self.detail}"


@dataclass
class PageReport:
    """What one page showed at one width: its problems, its element ids and its internal links."""

    page: str
    width: int
    problems: list[Problem] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    links: list[tuple[str, str]] = field(default_factory=list)  # (absolute file:// URL, link text)
    screenshot: Path | None = None
    seconds: float = 0.0


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first of chromium/google-chrome on PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named if Path(named).is_file() or shutil.which(named) else None
    return next((found for found in map(shutil.which, CANDIDATES) if found), None)


REDIRECT = re.compile(r"<meta[^>]+http-equiv=[\"']?refresh", re.IGNORECASE)


def pages(html_dir: Path) -> list[Path]:
    """Every HTML page of a built book, sorted: not Sphinx's ``_static``/``_sources`` folders, and not a
    redirect stub (Jupyter Book's ``index.html`` forwards to the first page, which is checked itself)."""
    html_dir = Path(html_dir)
    return sorted(p for p in html_dir.rglob("*.html")
                  if not SKIPPED_DIRS & set(p.relative_to(html_dir).parts[:-1])
                  and not (p.stat().st_size < 2000 and REDIRECT.search(p.read_text(errors="ignore"))))


# --------------------------------------------------------------------------------------------------
# A DevTools client on a pipe: Chromium reads JSON commands on fd 3 and writes replies on fd 4,
# each message ending with a NUL byte.


class _Chromium:
    def __init__(self, executable: str, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="ftutils-chromium-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Above fd 10 first, so that moving them to 3 and 4 in the child cannot overwrite each other.
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def wire() -> None:  # runs in the child between fork and exec; dup2'd fds survive the exec
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [executable, "--headless=new", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio", "--force-color-profile=srgb",
                "--font-render-hinting=none", f"--user-data-dir={self.profile}", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                            close_fds=False, preexec_fn=wire)  # noqa: PLW1509
        finally:
            for fd in (to_browser_r, from_browser_w, child_in, child_out):
                os.close(fd)
        self._next_id = 0
        self._replies: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self.events.put(None)  # the browser went away
                for waiting in list(self._replies.values()):
                    waiting.put({"error": {"message": "Chromium closed the DevTools pipe"}})
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        waiting = self._replies.pop(message["id"], None)
                    if waiting is not None:
                        waiting.put(message)
                else:
                    self.events.put(message)

    def send(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict:
        with self._lock:
            self._next_id += 1
            number = self._next_id
            waiting: queue.Queue = queue.Queue()
            self._replies[number] = waiting
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except OSError as error:
            raise DevToolsError(f"Chromium is not running ({error}); its log: {self.log.name}") from error
        try:
            reply = waiting.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise DevToolsError(f"Chromium did not answer {method} within {timeout or self.timeout:.0f} s") from None
        if "error" in reply:
            raise DevToolsError(f"{method} failed: {reply['error'].get('message')} ({reply['error']})")
        return reply.get("result", {})

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except DevToolsError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# What runs inside the page

SETTLE_JS = r"""
(async () => {
  const deadline = Date.now() + %(wait_ms)d;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  if (document.fonts) await document.fonts.ready;
  if (window.MathJax || document.querySelector('script[src*="mathjax" i]')) {  // a page that loads MathJax
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() < deadline) await sleep(50);
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await Promise.race([MathJax.startup.promise, sleep(Math.max(0, deadline - Date.now()))]);
    }
  }
  await Promise.all([...document.images].map((img) => img.complete ? null :
    new Promise((r) => { img.addEventListener('load', r); img.addEventListener('error', r);
                         setTimeout(r, Math.max(0, deadline - Date.now())); })));
  if (document.fonts) await document.fonts.ready;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return true;
})()
"""

INSPECT_JS = r"""
(() => {
  const out = [];
  const add = (kind, detail) => out.push([kind, detail]);
  const short = (text, n = 90) => { text = (text || '').replace(/\s+/g, ' ').trim();
                                    return text.length > n ? text.slice(0, n - 1) + '…' : text; };
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) name += '#' + el.id;
    const classes = [...el.classList].slice(0, 3);
    if (classes.length) name += '.' + classes.join('.');
    return `${name} "${short(el.textContent, 70)}"`;
  };
  const phone = %(phone)s;
  const column = ['article.bd-article', '[role="main"]', 'main', 'body'].map((s) => document.querySelector(s)).find(Boolean);
  const box = column.getBoundingClientRect();
  const CODE = 'pre, code, kbd, samp, script, style, textarea, mjx-container, .highlight, .MathJax';
  const textNodes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode, parent = node.parentElement;
    if (!parent || !node.nodeValue.trim()) continue;
    if (parent.closest('script, style, noscript, template, [hidden], .bd-search, .search-button')) continue;
    textNodes.push(node);
  }
  const seen = {};
  const once = (kind, key) => { seen[kind] = seen[kind] || new Set(); if (seen[kind].has(key)) return false;
                                seen[kind].add(key); return true; };

  // Math MathJax left as source, or typeset as an error.
  for (const el of document.querySelectorAll('.math')) {
    if (!el.querySelector('mjx-container') && !el.closest('mjx-container') && /\\|\$/.test(el.textContent))
      add('raw-math', `not typeset: ${short(el.textContent)}`);
  }
  for (const el of document.querySelectorAll('mjx-merror, [data-mjx-error]'))
    add('raw-math', `TeX error: ${short(el.getAttribute('data-mjx-error') || el.textContent)}`);
  const RAW = /\\\(|\\\[|\$\$|(^|[^\w$])\$[^$\s][^$]*(\\[A-Za-z]+|[\^_{])[^$]*\$/;
  for (const node of textNodes) {
    const parent = node.parentElement;
    if (parent.closest(CODE + ', .math')) continue;
    if (RAW.test(node.nodeValue) && once('raw-math', node.nodeValue)) add('raw-math', `TeX in the text: ${short(node.nodeValue)}`);
    if (node.nodeValue.includes('`') && once('markdown', node.nodeValue))
      add('markdown', `stray backtick (broken Markdown?): ${short(node.nodeValue)}`);
    const typed = node.nodeValue.match(/\bexercises?\s+\d+/i);
    if (typed && !parent.closest('a, .admonition-title, .exercise-title, .solution-title, caption, .caption')
        && once('unresolved-ref', node.nodeValue))
      add('unresolved-ref', `exercise number typed as text ("${typed[0]}"): reference its label instead: ${short(node.nodeValue)}`);
  }
  for (const node of textNodes) {
    if (/[\u{1F000}-\u{1FAFF}]/u.test(node.nodeValue) && once('emoji', node.nodeValue))
      add('emoji', `pictograph that needs an emoji font: ${short(node.nodeValue)}`);
  }

  // Cross references Sphinx could not resolve (rendered as text, not as a link).
  for (const el of document.querySelectorAll('.xref, .std-ref, .std-numref'))
    if (!el.closest('a')) add('unresolved-ref', `reference that resolved to nothing: ${short(el.textContent)}`);

  // Images.
  for (const img of document.images)
    if (!img.complete || img.naturalWidth === 0) add('image', `did not load: ${short(img.getAttribute('src'), 120)}`);

  // Width: elements beyond the text column with no scroll container of their own; clipped boxes;
  // scroll containers that scroll (at desktop width) or that hide that they scroll (on a phone).
  const scrolls = (style) => style.overflowX === 'auto' || style.overflowX === 'scroll';
  const reported = new Set();
  for (const el of column.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.position === 'fixed') continue;
    if (r.right > box.right + 1 || r.left < box.left - 1) {
      let up = el.parentElement, contained = false;
      while (up && up !== column) {
        if (reported.has(up) || getComputedStyle(up).overflowX !== 'visible') { contained = true; break; }
        up = up.parentElement;
      }
      if (!contained) {
        reported.add(el);
        add('overflow', `${describe(el)} is ${Math.round(r.width)} px wide, ends ${Math.round(r.right - box.right)} px ` +
                        `past the ${Math.round(box.width)} px text column, and has no scroll container`);
      }
    }
    const wider = el.scrollWidth > el.clientWidth + 1;
    if (!wider || el.clientWidth === 0) continue;
    if (style.overflowX === 'hidden' || style.overflowX === 'clip') {
      // MathJax's glyph boxes overhang their formula by a few px (scrollWidth counts them, nothing is
      // cut): for a formula, compare the typeset formula's own width with its box.
      const formula = el.querySelector(':scope > mjx-container > mjx-math, :scope > mjx-container');
      const cut = formula ? formula.getBoundingClientRect().width - el.clientWidth : el.scrollWidth - el.clientWidth;
      if (cut > 1 && !el.closest('mjx-container') && style.textOverflow !== 'ellipsis')
        add('clipped', `${describe(el)} cuts ${Math.round(cut)} px of its content (overflow: ${style.overflowX})`);
    } else if (scrolls(style)) {
      // At desktop width, code and its printed output wrap, and the book's own tables fit the column;
      // a wide data frame or equation may scroll, if it shows that it does (below).
      const mustFit = el.matches('pre, .highlight, .pst-scrollable-table-container') || el.querySelector('pre');
      if (!phone && mustFit) {
        add('scrolls-sideways', `${describe(el)} needs ${el.scrollWidth - el.clientWidth} px of sideways scrolling at desktop width`);
      } else {
        const bar = el.offsetHeight - el.clientHeight - parseFloat(style.borderTopWidth) - parseFloat(style.borderBottomWidth);
        const cue = bar > 0 || style.backgroundImage !== 'none';
        if (!cue) add('hidden-scroll', `${describe(el)} scrolls ${el.scrollWidth - el.clientWidth} px sideways with no visible scrollbar or shadow`);
      }
    }
  }
  const page = document.scrollingElement || document.documentElement;
  if (page.scrollWidth > window.innerWidth + 1)
    add('overflow', `the page is ${page.scrollWidth} px wide in a ${window.innerWidth} px window: it scrolls sideways`);

  // Tables that pandas truncated.
  for (const cell of document.querySelectorAll('table.dataframe td, table.dataframe th'))
    if (/\.\.\.$/.test(cell.textContent.trim())) add('clipped', `table cell cut by pandas (max_colwidth): ${short(cell.textContent)}`);

  const ids = [...document.querySelectorAll('[id]')].map((e) => e.id)
      .concat([...document.querySelectorAll('a[name]')].map((e) => e.getAttribute('name')));
  const links = [...document.querySelectorAll('a[href]')]
      .filter((a) => a.protocol === 'file:' || a.protocol === location.protocol && a.host === location.host)
      .map((a) => [a.href, short(a.textContent, 60)]);
  return {problems: out, ids, links};
})()
"""


def _console_text(event: dict) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        exception = details.get("exception", {})
        text = exception.get("description") or details.get("text") or "exception"
        where = details.get("url", "")
        return f"{text.splitlines()[0]}" + (f" ({Path(urlsplit(where).path).name}:{details.get('lineNumber', 0) + 1})" if where else "")
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        args = params.get("args", [])
        return "console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in args)
    if method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        return f"{entry.get('text', '')} {entry.get('url', '')}".strip()
    return None


class _Session:
    """One browser tab driven through a flattened DevTools session."""

    def __init__(self, browser: _Chromium) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def events(self) -> list[dict]:
        found = []
        while True:
            try:
                event = self.browser.events.get_nowait()
            except queue.Empty:
                return found
            if event is None:
                raise DevToolsError(f"Chromium exited; its log: {self.browser.log.name}")
            if event.get("sessionId") == self.session:
                found.append(event)

    def wait_for(self, method: str, timeout: float, collected: list[dict]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.browser.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event is None:
                raise DevToolsError(f"Chromium exited; its log: {self.browser.log.name}")
            if event.get("sessionId") != self.session:
                continue
            collected.append(event)
            if event.get("method") == method:
                return
        raise DevToolsError(f"no {method} within {timeout:.0f} s")

    def evaluate(self, expression: str, timeout: float) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                               "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in reply:
            raise DevToolsError(f"page script failed: {reply['exceptionDetails'].get('exception', {}).get('description')}")
        return reply.get("result", {}).get("value")

    def set_width(self, width: int, height: int = 900) -> None:
        phone = width < PHONE_BELOW
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": phone, "screenWidth": width, "screenHeight": height})
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": phone})


def _open(session: _Session, url: str, page: str, width: int, *, timeout: float,
          screenshot: Path | None) -> PageReport:
    started = time.monotonic()
    report = PageReport(page, width)
    session.events()  # drop what the previous page left behind
    collected: list[dict] = []
    session.send("Page.navigate", {"url": url})
    session.wait_for("Page.loadEventFired", timeout, collected)
    session.evaluate(SETTLE_JS % {"wait_ms": int(timeout * 1000 * 0.6)}, timeout)
    found = session.evaluate(INSPECT_JS % {"phone": "true" if width < PHONE_BELOW else "false"}, timeout)
    collected += session.events()
    seen = set()
    for event in collected:
        text = _console_text(event)
        if text and text not in seen:
            seen.add(text)
            report.problems.append(Problem(page, width, "console-error", text))
    report.problems += [Problem(page, width, kind, detail) for kind, detail in found["problems"]]
    report.ids = set(found["ids"])
    report.links = [(href, text) for href, text in found["links"]]
    if screenshot is not None:
        size = session.send("Page.getLayoutMetrics").get("cssContentSize", {})
        height = min(int(size.get("height", 900)), MAX_SHOT_HEIGHT)
        shot = session.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": max(height, 1), "scale": 1}}, timeout=timeout)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        report.screenshot = screenshot
    report.seconds = time.monotonic() - started
    return report


def cross_reference_problems(html_dir: Path, reports: Iterable[PageReport]) -> list[Problem]:
    """Links (from every report) to a page that does not exist, or to an anchor its page lacks.

    A link into a page that was not opened (e.g. a file under ``_static``) is checked for the file only.

    Example:
        >>> import tempfile
        >>> site = Path(tempfile.mkdtemp())
        >>> _ = (site / "a.html").write_text("<p id='ex-1'>")
        >>> ok = PageReport("a.html", 420, ids={"ex-1"}, links=[((site / "a.html").as_uri() + "#ex-1", "Exercise 1")])
        >>> bad = PageReport("b.html", 420, links=[((site / "a.html").as_uri() + "#ex-2", "Exercise 2")])
        >>> [p.detail for p in cross_reference_problems(site, [ok, bad])]
        ["link 'Exercise 2' points to a.html#ex-2, but a.html has no element with id 'ex-2'"]
    """
    html_dir = Path(html_dir).resolve()
    reports = list(reports)
    ids: dict[Path, set[str]] = {}
    for report in reports:
        ids.setdefault((html_dir / report.page).resolve(), set()).update(report.ids)
    problems, seen = [], set()
    for report in reports:
        for href, text in report.links:
            parts = urlsplit(href)
            if parts.scheme != "file":
                continue
            target = Path(unquote(parts.path)).resolve()
            fragment = unquote(parts.fragment)
            try:
                shown = target.relative_to(html_dir).as_posix()
            except ValueError:
                shown = str(target)
            key = (report.page, shown, fragment)
            if key in seen:
                continue
            seen.add(key)
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(Problem(report.page, report.width, "unresolved-ref",
                                        f"link {text!r} points to {shown}, which does not exist"))
            elif fragment and target in ids and fragment not in ids[target]:
                problems.append(Problem(report.page, report.width, "unresolved-ref",
                                        f"link {text!r} points to {shown}#{fragment}, but {shown} has no element "
                                        f"with id {fragment!r}"))
    return problems


def _gallery(folder: Path, reports: Sequence[PageReport], problems: Sequence[Problem]) -> Path:
    rows = []
    for report in reports:
        if report.screenshot is None:
            continue
        mine = [p for p in problems if p.page == report.page and p.width == report.width]
        items = "".join(f"<li>{html.escape(p.kind)}: {html.escape(p.detail)}</li>" for p in mine) or "<li>no problems</li>"
        link = report.screenshot.relative_to(folder).as_posix()
        rows.append(f'<section><h2>{html.escape(report.page)} at {report.width} px ({report.seconds:.1f} s)</h2>'
                    f'<ul>{items}</ul><a href="{link}"><img src="{link}" loading="lazy" '
                    f'style="max-width:{min(report.width, 700)}px;max-height:600px;object-fit:cover;'
                    f'object-position:top;border:1px solid #ccc"></a></section>')
    page = folder / "index.html"
    page.write_text("<!doctype html><meta charset='utf-8'><title>The book in headless Chromium</title>"
                    f"<h1>The book in headless Chromium: {len(problems)} problem(s)</h1>"
                    "<p>Click a screenshot for the whole page.</p>" + "".join(rows))
    return page


def _clear_screenshots(folder: Path, html_dir: Path, widths: Sequence[int]) -> None:
    """Make ``folder`` ready for new screenshots, removing only what an earlier audit wrote there.

    That is the ``<width>px`` folders of PNGs and the ``index.html`` beside them. Anything else in
    ``folder`` stays; a folder that holds the HTML being checked is refused, not emptied.
    """
    if folder == html_dir or folder in html_dir.parents:
        raise ValueError(f"--screenshots {folder} holds the HTML being checked ({html_dir}): give a folder of "
                         "its own, e.g. _build/screenshots.")
    folder.mkdir(parents=True, exist_ok=True)
    for width in widths:
        shots = folder / f"{width}px"
        if shots.is_dir():
            for png in shots.glob("*.png"):
                png.unlink()
    (folder / "index.html").unlink(missing_ok=True)


def audit(html_dir: Path | str, *, widths: Iterable[int] = WIDTHS.values(), screenshots: Path | str | None = None,
          only: Sequence[str] | None = None, timeout: float = 90.0, chromium: str | None = None,
          progress: bool = False) -> tuple[list[Problem], list[PageReport]]:
    """Open every page of ``html_dir`` at each width; return ``(problems, reports)``.

    ``only`` keeps the pages whose path (relative to ``html_dir``) contains one of the strings.
    ``screenshots`` is a folder for a full-page PNG per page and width, plus an ``index.html`` that
    shows them with their problems. Raises :class:`DevToolsError` if Chromium is missing or stops.
    """
    html_dir = Path(html_dir).resolve()
    found = pages(html_dir)
    if only:
        found = [p for p in found if any(s in p.relative_to(html_dir).as_posix() for s in only)]
    if not found:
        raise FileNotFoundError(f"no HTML pages under {html_dir}: build the book first (make html).")
    executable = chromium or find_chromium()
    if executable is None:
        raise DevToolsError("no Chromium found (looked for $CHROMIUM, " + ", ".join(CANDIDATES) + "): install "
                            "the system package, e.g. `apt-get install -y chromium` on Debian/Ubuntu.")
    widths = list(widths)
    folder = Path(screenshots).resolve() if screenshots is not None else None
    if folder is not None:
        _clear_screenshots(folder, html_dir, widths)
    browser = _Chromium(executable, timeout=timeout)
    reports: list[PageReport] = []
    try:
        session = _Session(browser)
        for width in widths:
            session.set_width(width)
            for path in found:
                page = path.relative_to(html_dir).as_posix()
                shot = None
                if folder is not None:
                    shot = folder / f"{width}px" / (page.replace("/", "__").removesuffix(".html") + ".png")
                try:
                    report = _open(session, path.as_uri(), page, width, timeout=timeout, screenshot=shot)
                except DevToolsError as error:
                    report = PageReport(page, width, [Problem(page, width, "console-error",
                                                              f"the page did not finish loading: {error}")])
                reports.append(report)
                if progress:
                    print(f"[browser] {page} @ {width} px: {len(report.problems)} problem(s), "
                          f"{report.seconds:.1f} s", flush=True)
    finally:
        browser.close()
    problems = [p for r in reports for p in r.problems] + cross_reference_problems(html_dir, reports)
    if folder is not None:
        _gallery(folder, reports, problems)
    return problems, reports


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ftutils.browser [HTML_DIR] [--screenshots DIR] [--width W ...] [--only PART ...]``."""
    parser = argparse.ArgumentParser(prog="python -m ftutils.browser", description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", type=Path)
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="folder for a screenshot of every page (default: _build/screenshots next to html_dir)")
    parser.add_argument("--width", type=int, action="append", help=f"viewport width(s); default {list(WIDTHS.values())}")
    parser.add_argument("--only", action="append", help="only pages whose path contains this (repeatable)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds a page may take to settle")
    args = parser.parse_args(argv)
    screenshots = args.screenshots or args.html_dir.resolve().parent / "screenshots"
    started = time.monotonic()
    try:
        problems, reports = audit(args.html_dir, widths=args.width or WIDTHS.values(), screenshots=screenshots,
                                  only=args.only, timeout=args.timeout, progress=True)
    except (DevToolsError, FileNotFoundError, ValueError) as error:
        print(f"[browser] {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"[browser] {problem}")
    print(f"[browser] {len(reports)} page views ({len({r.page for r in reports})} pages), {len(problems)} problem(s), "
          f"{time.monotonic() - started:.0f} s; screenshots: {screenshots / 'index.html'}", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
