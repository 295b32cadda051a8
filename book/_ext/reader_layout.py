"""Sphinx extension: the book's own style sheet, ``static/reader.css``, on every page.

It keeps content inside the text column: code and outputs wrap, wide tables and equations scroll
inside their own box and show that they do (a shadow at the edge, which phones show too), figures
shrink to the column. ``python -m ftutils.browser`` (``make browser``) checks every page in headless
Chromium at desktop and phone width.

It also drops a script that a page would include twice. sphinx-thebe and sphinx-togglebutton add
their inline configuration when the documents are read, after the HTML builder has already copied
the registered scripts, so each page got two copies, and the second ``const THEBE_JS_URL = ...``
threw "Identifier 'THEBE_JS_URL' has already been declared" in every reader's console. And it gives
the theme's light/dark switch a valid starting mode (see ``THEME_MODE``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"


def _add_static_path(app: Any, config: Any) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def _script_key(script: Any) -> tuple:
    # An inline script added before the builder existed has filename '', after it None: the same script.
    attributes = getattr(script, "attributes", None) or {}
    filename = getattr(script, "filename", script) or ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _drop_repeated_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    if len(kept) < len(scripts):
        context["script_files"] = kept


# The theme starts every page with `dataset.mode = localStorage.getItem("mode") || ""` and, on a
# reader's first visit (nothing stored yet), logs "Got invalid theme mode: ." before using "auto";
# sphinx-book-theme has no default_mode option to set instead. Say "auto" before the theme looks.
THEME_MODE = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def _style_changed(app: Any, env: Any, added: set, changed: set, removed: set) -> list[str]:
    # Sphinx copies the static files only when it writes a page: after an edit of reader.css alone an
    # incremental build would keep the old copy. Rewrite the root page when the style sheet changed.
    digest = hashlib.sha256((STATIC / "reader.css").read_bytes()).hexdigest()
    if getattr(env, "reader_css_digest", None) == digest:
        return []
    env.reader_css_digest = digest
    return [env.config.root_doc]


def setup(app: Any) -> dict:
    app.connect("config-inited", _add_static_path)
    app.connect("env-get-outdated", _style_changed)
    app.add_js_file(None, body=THEME_MODE, priority=100)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    app.add_css_file("reader.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
