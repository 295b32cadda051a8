"""Running a chapter on Google Colab: detect Colab and pick the ``gpu`` configuration on a GPU runtime.

The rule, exactly: on Colab (``"google.colab"`` imported) with a CUDA device, a chapter whose
``CONFIG`` is the default ``"cpu-tiny"`` runs with ``"gpu"`` instead, and says so. Any other value
the reader chose is kept, nothing changes outside Colab, and ``FTUTILS_KEEP_CONFIG=1`` (set before
the chapter runs) keeps ``cpu-tiny`` on a Colab GPU too.

Example:
    >>> from ftutils.colab import auto_config
    >>> auto_config("cpu-tiny")  # not on Colab: unchanged
    'cpu-tiny'
"""

from __future__ import annotations

import os
import sys

KEEP_ENV = "FTUTILS_KEEP_CONFIG"


def on_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def cuda_available() -> bool:
    """True when torch sees a CUDA device (False if torch is missing)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def auto_config(name: str) -> str:
    """The configuration a chapter should run: ``"gpu"`` for the default on a Colab GPU, else ``name``."""
    if name == "cpu-tiny" and on_colab() and cuda_available() and os.environ.get(KEEP_ENV, "") in ("", "0"):
        print(f"Colab with a GPU: running the 'gpu' configuration instead of 'cpu-tiny' "
              f"(set {KEEP_ENV}=1 to keep cpu-tiny).")
        return "gpu"
    return name
