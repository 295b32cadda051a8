"""Check that the version ranges of ``pyproject.toml`` are true: build a virtualenv at one stack, test there.

On Colab, ``pip install ftutils[extras]`` keeps every preinstalled package that satisfies a range, so
each range is a promise that the package works from its lower bound up. Two stacks test the promise:

* ``floor``: every package the project names, at the lowest version its range allows (the
  constraints are generated from ``pyproject.toml``, so a raised bound is tested at once);
* ``colab``: the versions a Colab GPU runtime had preinstalled (``.ci/colab-stack.txt``); packages
  Colab does not ship resolve as pip would resolve them there.

For each stack: a virtualenv ``.venv-<stack>`` (torch comes from PyPI, a CUDA build of about 4 GB;
code runs on the CPU), ``pip check``, the unit tests and doctests, then chapters executed for
``SEED`` 0 with their claims' asserts (``python -m ftutils.book run --seeds 0``; no output is compared,
since other library versions give other digits). The models, data and converted SmolLM2 folders come
from the shared ``FTUTILS_CACHE``; caches are keyed by library versions, so the stacks do not mix.

Usage (``make stack-floor`` / ``make stack-colab``)::

    python .ci/stack.py floor [--chapters 02 04 | --chapters all] [--venv DIR]
    python .ci/stack.py constraints floor      # print the constraints only
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLAB_STACK = ROOT / ".ci" / "colab-stack.txt"
STACKS = ("floor", "colab")
EXTRAS = "book,extras"
# The fastest chapter: enough to show that the whole path (data, model, trainer, papermill) works.
DEFAULT_CHAPTERS = ("02",)

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*)$")


def _load_pyproject(path: Path) -> dict:
    import tomllib  # Python 3.11+: the checker runs where CI runs, not on a reader's 3.10

    return tomllib.loads(path.read_text())


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """Every requirement string of the project: its dependencies and those of every extra."""
    project = _load_pyproject(pyproject)["project"]
    found = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        found.extend(extra)
    return found


def floor_pins(reqs: list[str]) -> dict[str, str]:
    """``{package: lowest allowed version}`` for each requirement with a ``>=`` bound.

    A requirement without a lower bound is an error: an untested range is exactly what this checks.

    Example:
        >>> floor_pins(["torch>=2.8", "datasets>=3.0,!=4.0.*", "jupyter-book>=1.0.2,<2"])
        {'torch': '2.8', 'datasets': '3.0', 'jupyter-book': '1.0.2'}
        >>> floor_pins(["numpy"])
        Traceback (most recent call last):
        ...
        ValueError: requirement 'numpy' has no lower bound (>=): give it one, the lowest version that passes `make stack-floor`.
    """
    pins = {}
    for req in reqs:
        match = _REQUIREMENT.match(req)
        if not match:
            raise ValueError(f"cannot read the requirement {req!r}.")
        name, spec = match.group(1).lower(), match.group(2)
        lower = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if not lower:
            raise ValueError(f"requirement {req!r} has no lower bound (>=): give it one, the lowest version "
                             "that passes `make stack-floor`.")
        excluded = re.findall(r"!=\s*([0-9][^,;\s]*)", spec)
        if any(_matches(lower.group(1), pattern) for pattern in excluded):
            raise ValueError(f"requirement {req!r} excludes its own lower bound: raise the bound instead.")
        pins[name] = lower.group(1)
    return pins


def _matches(version: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return (version + ".").startswith(pattern[:-1])
    return version == pattern


def read_stack_file(path: Path) -> dict[str, str]:
    """``{package: version}`` from ``name==version`` lines (``#`` starts a comment)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path.name}:{number}: expected 'name==version', got {line!r}.")
        pins[name.strip().lower()] = version.strip()
    return pins


def constraints(stack: str) -> dict[str, str]:
    """The pins of ``stack`` (one of :data:`STACKS`)."""
    if stack == "floor":
        return floor_pins(requirements())
    if stack == "colab":
        return read_stack_file(COLAB_STACK)
    raise ValueError(f"unknown stack {stack!r}: expected one of {', '.join(STACKS)}.")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+ " + " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, **kwargs)


def check(stack: str, venv: Path, chapters: list[str]) -> int:
    pins = constraints(stack)
    venv = venv if venv.is_absolute() else ROOT / venv
    python = venv / "bin" / "python"
    started = time.time()
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)], check=True)
        _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    constraint_file = venv / "constraints.txt"
    constraint_file.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    install = _run([str(python), "-m", "pip", "install", "-c", str(constraint_file), "-e", f".[{EXTRAS}]"],
                   cwd=ROOT)
    if install.returncode:
        print(f"[stack {stack}] pip cannot install this stack (its message is above): change the range in "
              "pyproject.toml (floor) or the pin in .ci/colab-stack.txt (colab).", file=sys.stderr)
        return 1
    installed = venv / "freeze.txt"
    installed.write_text(subprocess.run([str(python), "-m", "pip", "freeze", "--exclude-editable"],
                                        capture_output=True, text=True, check=True).stdout)
    setup_s = time.time() - started
    results = {"pip check": _run([str(python), "-m", "pip", "check"]).returncode == 0}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONHASHSEED": "0"}
    t = time.time()
    unit = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "--doctest-modules",
                 "src/ftutils"], cwd=ROOT, env=env)
    results[f"unit tests ({time.time() - t:.0f} s)"] = unit.returncode == 0
    t = time.time()
    only = [] if chapters == ["all"] else ["--only", *chapters]
    book = _run([str(python), "-m", "ftutils.book", "run", "--seeds", "0", *only], cwd=ROOT, env=env)
    results[f"chapters {' '.join(chapters)} ({time.time() - t:.0f} s)"] = book.returncode == 0
    versions = {line.split("==")[0].lower(): line.split("==")[1] for line in installed.read_text().splitlines()
                if "==" in line}
    shown = ", ".join(f"{name} {versions.get(name, '?')}" for name in sorted(pins))
    print(f"\n[stack {stack}] installed in {setup_s:.0f} s: {shown}")
    for what, ok in results.items():
        print(f"[stack {stack}] {what}: {'passed' if ok else 'FAILED'}")
    return 0 if all(results.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stack", help="floor, colab, or 'constraints'")
    parser.add_argument("which", nargs="?", help="with 'constraints': the stack to print")
    parser.add_argument("--venv", type=Path, default=None, help="virtualenv folder (default .venv-<stack>)")
    parser.add_argument("--chapters", nargs="+", default=list(DEFAULT_CHAPTERS),
                        help="chapters to execute, or 'all' (default: 02)")
    args = parser.parse_args(argv)
    try:
        if args.stack == "constraints":
            for name, version in sorted(constraints(args.which or "").items()):
                print(f"{name}=={version}")
            return 0
        if args.stack not in STACKS:
            raise ValueError(f"unknown stack {args.stack!r}: expected one of {', '.join(STACKS)}, or 'constraints'.")
        return check(args.stack, args.venv or Path(f".venv-{args.stack}"), args.chapters)
    except ValueError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
