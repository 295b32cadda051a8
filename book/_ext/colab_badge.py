"""Sphinx extension: an "Open in Colab" link at the top of every chapter page built from a notebook.

Jupyter Book's own launch buttons would point at ``executed/NN_name.ipynb``, which is not in the
repository; readers must open ``colab/NN_name.ipynb``. The repository URL and branch come from
``_config.yml`` (``repository:``), which Jupyter Book passes to the theme options.
"""

from __future__ import annotations

from typing import Any

BADGE = (
    '<p class="colab-badge"><a href="{url}" target="_blank" rel="noopener" '
    'style="display:inline-block;padding:0.2em 0.7em;border-radius:0.3em;background:#f9ab00;'
    'color:#202124;font-weight:600;text-decoration:none;font-size:0.9em">'
    "&#9654; Open in Colab</a> "
    '<span style="font-size:0.85em;color:#5f6368">runs <code>colab/{name}.ipynb</code>; '
    "on a GPU runtime it switches to the <code>gpu</code> configuration</span></p>"
)


def colab_link(repository_url: str, branch: str, name: str) -> str:
    """``https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/colab/NAME.ipynb``."""
    repo = repository_url.rstrip("/").removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/colab/{name}.ipynb"


def _add_badge(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if not pagename.startswith("executed/") or "body" not in context:
        return
    options = app.config.html_theme_options or {}
    url = options.get("repository_url", "")
    branch = options.get("repository_branch", "") or "main"
    if not url.startswith("https://github.com/"):
        return
    name = pagename.split("/", 1)[1]
    badge = BADGE.format(url=colab_link(url, branch, name), name=name)
    body = context["body"]
    end_of_title = body.find("</h1>")
    at = end_of_title + len("</h1>") if end_of_title >= 0 else 0
    context["body"] = body[:at] + badge + body[at:]


def setup(app: Any) -> dict:
    app.connect("html-page-context", _add_badge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
