"""Sphinx extension: the book's own style sheet, ``static/reader.css``, on every page.

It keeps content inside the text column: code and outputs wrap, wide tables and equations scroll
inside their own box and show that they do (a shadow at the edge, which phones show too), figures
shrink to the column. ``python -m ftutils.browser`` (``make browser``) checks every page in headless
Chromium at desktop and phone width.

It also drops a script that a page would include twice: sphinx-thebe adds its inline configuration
(``const THEBE_JS_URL = ...``) once per build, and a second copy on the page throws "Identifier
'THEBE_JS_URL' has already been declared" in every reader's console.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"


def _add_static_path(app: Any, config: Any) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def _script_key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", None) or {}
    return (str(getattr(script, "filename", script)), tuple(sorted((k, str(v)) for k, v in attributes.items())))


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


def setup(app: Any) -> dict:
    app.connect("config-inited", _add_static_path)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    app.add_css_file("reader.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
