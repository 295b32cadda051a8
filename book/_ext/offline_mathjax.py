"""Sphinx extension: serve MathJax from the book itself, so equations render without the internet.

Sphinx loads MathJax from a CDN by default. This copies the MathJax 3 browser bundle that
``ftutils.assets.path("mathjax")`` provides (npm ``mathjax@3.2.2``, cached, never committed) into
``_static/mathjax/`` of the HTML output and points ``mathjax_path`` at it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

SCRIPT = "mathjax/tex-chtml.js"


def _use_local(app: Any, config: Any) -> None:
    config.mathjax_path = SCRIPT


def _copy_bundle(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from ftutils import assets

    source = Path(assets.path("mathjax"))
    target = Path(app.outdir) / "_static" / "mathjax"
    # The speech-rule engine (sre) is only needed for MathJax's accessibility menu extras.
    shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("sre", "node-main*"))
    if not (target / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax bundle at {source} has no tex-chtml.js: re-fetch the 'mathjax' asset.")


def setup(app: Any) -> dict:
    app.connect("config-inited", _use_local, priority=900)
    app.connect("build-finished", _copy_bundle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
