"""The book runner: execute the chapters, build the HTML, keep the Colab notebooks in sync.

One entry point, ``python -m ftutils.book``:

* ``run [--config cpu-tiny|gpu] [--only 02 ...] [-p NAME VALUE ...] [--no-build]`` converts each
  ``notebooks/NN_name.py`` (Jupytext percent format) to a notebook, executes it with papermill under
  the config (``CONFIG`` and every ``-p`` go into the chapter's ``parameters`` cell) into
  ``executed/NN_name.ipynb``, records the time per chapter in ``book/execution_times.md`` and then
  builds the HTML (``jupyter-book build . -W``) from the executed notebooks. A failing chapter stops
  the run with "chapter NN_name failed in cell K ...".
* ``run --seeds 0 1 2`` executes the chapters once per ``SEED`` into ``executed/seeds/`` and only
  requires every cell to pass (each claim's hidden assert must hold for every seed).
* ``run --config gpu --smoke`` executes every chapter's ``gpu`` code paths on the CPU with every size
  capped (:func:`ftutils.config.smoke_sized`) into ``executed/smoke/``: a typo or a hub-only call in a
  branch ``cpu-tiny`` never takes fails it. Cells tagged ``claims`` run with their failing asserts
  reported, not raised (:func:`ftutils.chapter.run_claims`): tiny data proves no result.
* ``build`` builds the HTML from what ``executed/`` holds (warnings are errors) and checks that no
  page loads MathJax from a CDN.
* ``sync`` regenerates ``colab/NN_name.ipynb``: a Colab setup cell, then the chapter's cells, with
  the outputs of the last ``cpu-tiny`` run when its inputs still match.
* ``compare`` fails if a checked output of ``executed/`` differs from the one recorded in ``colab/``
  (CI: a cold-cache run against the recorded warm-cache run).
* ``check-sync`` fails if a Colab notebook's inputs differ from its ``.py`` source (CI runs it).

Example:
    >>> from ftutils.book import parse_parameters
    >>> parse_parameters([("N_REVIEWS", "200"), ("MODEL", "minilm"), ("LR", "3e-5")])
    {'N_REVIEWS': 200, 'MODEL': 'minilm', 'LR': 3e-05}
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftutils import results  # json and os only: the runner stays light (no torch)
from ftutils.config import SMOKE_ENV  # read by ftutils.chapter.start

EXECUTED_DIR = "executed"
COLAB_DIR = "colab"
NOTEBOOK_DIR = "notebooks"
TIMES_FILE = "book/execution_times.md"
DEFAULT_CONFIG = "cpu-tiny"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
SETUP_TAG = "colab-setup"
_CHAPTER_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.py$")
# Keys of ftutils.assets worth fetching up front on Colab when a chapter names them.
_PREFETCHABLE = ("minilm", "smollm2-135m", "rotten_tomatoes", "bbc_news", "wnut16", "peoples_daily",
                 "chn_sentiment", "spam_assassin", "django_po")


class BookError(RuntimeError):
    """A problem the runner reports in one line (bad arguments, failed chapter, failed build)."""


class ChapterFailed(BookError):
    """A chapter raised while executing; the message names the chapter and the cell."""


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook source: ``notebooks/NN_name.py``."""

    number: str  # "02"
    name: str  # "02_core_concepts"
    source: Path

    def executed(self, root: Path) -> Path:
        return root / EXECUTED_DIR / f"{self.name}.ipynb"

    def colab(self, root: Path) -> Path:
        return root / COLAB_DIR / f"{self.name}.ipynb"


# --------------------------------------------------------------------------------------------------
# Finding the book and its chapters


def find_root(start: Path | None = None) -> Path:
    """The repository root: the first folder upward from ``start`` holding ``_config.yml`` and ``notebooks/``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / NOTEBOOK_DIR).is_dir():
            return folder
    raise BookError(
        f"No book found at or above {here}: expected a folder with _config.yml and {NOTEBOOK_DIR}/. "
        "Run from the repository root or pass --root."
    )


def chapters(root: Path, only: Sequence[str] | None = None) -> list[Chapter]:
    """The chapter sources in ``root/notebooks``, in order; ``only`` picks some by number or name.

    ``only`` entries may be ``"2"``, ``"02"`` or ``"02_core_concepts"``. An entry matching no chapter
    raises ``BookError`` listing the chapters that exist.
    """
    found = []
    for file in sorted((root / NOTEBOOK_DIR).glob("*.py")):
        match = _CHAPTER_RE.match(file.name)
        if match:
            found.append(Chapter(match.group(1), file.stem, file))
    if not only:
        return found
    picked: list[Chapter] = []
    for wanted in only:
        key = wanted.removesuffix(".py").removesuffix(".ipynb")
        key = Path(key).name
        if key.isdigit():
            key = f"{int(key):02d}"
        hits = [c for c in found if key in (c.number, c.name)]
        if not hits:
            names = ", ".join(c.name for c in found) or "none"
            raise BookError(f"--only {wanted!r} matches no chapter: expected a number or name of {names}.")
        picked.extend(h for h in hits if h not in picked)
    return sorted(picked, key=lambda c: c.name)


# --------------------------------------------------------------------------------------------------
# Parameters


def parse_value(text: str) -> Any:
    """Read a ``-p`` value the way a reader would type it in the parameters cell.

    Python literals (``3``, ``3e-5``, ``None``, ``True``, ``[1, 2]``, ``'x'``) become those values;
    anything else stays a string (``minilm``, ``cpu-tiny``).

    Example:
        >>> parse_value("3"), parse_value("None"), parse_value("cpu-tiny")
        (3, None, 'cpu-tiny')
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_parameters(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``[("NAME", "VALUE"), ...]`` from ``-p NAME VALUE`` into a dict; bad names raise ``BookError``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise BookError(f"-p takes a name and a value, got {list(pair)!r}: e.g. -p N_REVIEWS 200.")
        name, value = pair
        if not name.isidentifier():
            raise BookError(f"-p name {name!r} is not a Python identifier: expected e.g. N_REVIEWS.")
        if name == "CONFIG":
            raise BookError("Set the configuration with --config, not -p CONFIG.")
        params[name] = parse_value(value)
    return params


def check_config(name: str) -> None:
    """Fail at once (``BookError``) if ``name`` is not a configuration ``ftutils.config`` knows."""
    from ftutils.config import CONFIGS

    if name not in CONFIGS:
        raise BookError(f"Unknown config {name!r}: expected one of {', '.join(CONFIGS)}.")


def parameter_names(notebook: Any) -> list[str]:
    """Names assigned in the cell tagged ``parameters`` (empty if the notebook has none)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return []


# --------------------------------------------------------------------------------------------------
# Executing


def read_source(chapter: Chapter) -> Any:
    """The chapter as an nbformat notebook (Jupytext), with the python3 kernelspec set."""
    import jupytext

    notebook = jupytext.read(chapter.source)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata.setdefault("language_info", {"name": "python"})
    return notebook


def execute_chapter(root: Path, chapter: Chapter, config: str, params: dict[str, Any],
                    *, timeout: int | None = None, out: Path | None = None, keep_going: bool = False,
                    smoke: bool = False) -> float:
    """Execute one chapter into ``out`` (default ``executed/NN_name.ipynb``); return the seconds it took.

    Raises ``ChapterFailed`` naming the chapter and the failing cell, and ``BookError`` if a ``-p``
    name is not in the chapter's parameters cell. With ``keep_going`` every cell runs even after one
    failed, and the message lists each failing cell. ``smoke``: a smoke run (see :func:`run_smoke`).
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = read_source(chapter)
    known = parameter_names(notebook)
    if not known:
        raise BookError(f"chapter {chapter.name} has no cell tagged 'parameters': add one holding CONFIG.")
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise BookError(f"chapter {chapter.name} has no parameter {', '.join(unknown)}: "
                        f"its parameters cell sets {', '.join(known)}.")
    out = out or chapter.executed(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update({k: os.environ.get(k, v) for k, v in OFFLINE_ENV.items()})
    if smoke:
        notebook = claims_reported(notebook)
    with tempfile.TemporaryDirectory(prefix="ftbook-") as tmp:
        source = Path(tmp) / f"{chapter.name}.ipynb"
        nbformat.write(notebook, source)
        record = Path(tmp) / "config.json"  # ftutils.chapter.start writes the configuration it ran
        started = time.perf_counter()
        results_rows = Path(tmp) / "results.jsonl"  # ftutils.results.record appends the chapter's results
        env = {RECORD_ENV: str(record), SMOKE_ENV: "1" if smoke else "0", results.RESULTS_ENV: str(results_rows),
               "PYTHONWARNINGS": kernel_warning_filters()}
        try:
            with expected_errors_allowed(), _environment(env):
                papermill.execute_notebook(
                    str(source), str(out), parameters={"CONFIG": config, **params}, kernel_name="python3",
                    language="python", cwd=str(root), progress_bar=False, log_output=False,
                    execution_timeout=timeout, **({"allow_errors": True} if keep_going else {}),
                )
        except PapermillExecutionError as exc:
            if keep_going:
                raise ChapterFailed(f"chapter {chapter.name} failed in " + "; ".join(failing_cells(out))
                                    + f"  [tracebacks in {out}]") from None
            raise ChapterFailed(_failure_message(chapter, out, exc)) from None
        seconds = time.perf_counter() - started
        ran = json.loads(record.read_text()) if record.is_file() else None
        rows = results.read_recorded(results_rows, chapter.number)
    executed = nbformat.read(out, as_version=4)
    executed.metadata.setdefault("ftutils", {})
    executed.metadata["ftutils"].update({"config": config, "parameters": params, "seconds": round(seconds, 1),
                                         "book_config": ran, "results": rows})
    nbformat.write(executed, out)
    return seconds


# Warnings the kernel ignores from its first line on, as ``-W`` filters (``action:message-prefix``). A
# chapter's own filters (``ftutils.chapter.quiet``) come too late for these: tqdm warns while
# ``import transformers`` runs, in the chapter's first cell, and the warning names the reader's venv path.
KERNEL_IGNORED_WARNINGS = ("ignore:IProgress not found",)  # tqdm.auto in a kernel without ipywidgets


def kernel_warning_filters() -> str:
    """``PYTHONWARNINGS`` for a chapter's kernel: the caller's filters, then the book's.

    Example:
        >>> import os
        >>> os.environ.pop("PYTHONWARNINGS", None) and None
        >>> kernel_warning_filters()
        'ignore:IProgress not found'
    """
    return ",".join(filter(None, [os.environ.get("PYTHONWARNINGS", ""), *KERNEL_IGNORED_WARNINGS]))


RECORD_ENV = "FTUTILS_RECORD_CONFIG"  # read by ftutils.chapter.start (not imported here: it imports torch)
CLAIMS_TAG = "claims"
NOT_CHECKED = "claim not checked in a smoke run"  # what ftutils.chapter.run_claims prints


def claims_reported(notebook: Any) -> Any:
    """A copy of ``notebook`` whose cells tagged ``claims`` run through :func:`ftutils.chapter.run_claims`.

    Such a cell's failing ``assert`` is then printed, not raised; its other errors still raise.

    Example:
        >>> import nbformat
        >>> cell = nbformat.v4.new_code_cell("assert x > 1", metadata={"tags": ["claims"]})
        >>> nb = nbformat.v4.new_notebook(cells=[cell])
        >>> print(claims_reported(nb).cells[0].source)
        # assert x > 1  (smoke run: claims reported, not asserted)
        __import__('ftutils.chapter').chapter.run_claims('assert x > 1', globals())
    """
    changed = copy.deepcopy(notebook)
    for cell in changed.cells:
        if cell.cell_type == "code" and CLAIMS_TAG in cell.metadata.get("tags", []):
            first = next((line for line in cell.source.splitlines() if line.strip()), "")
            cell.source = (f"# {first}  (smoke run: claims reported, not asserted)\n"  # named in failure messages
                           f"__import__('ftutils.chapter').chapter.run_claims({cell.source!r}, globals())")
    return changed


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Any:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def expected_errors_allowed() -> Any:
    """Let cells tagged ``raises-exception`` fail, as nbclient and nbval already do.

    A chapter shows some errors on purpose (the article's bugs). nbclient keeps executing after such a
    cell, but papermill's final check fails the run on any error output; this hides the errors of
    tagged cells from that check only (the outputs stay in the executed notebook).
    """
    import papermill.execute as pm_execute

    original = pm_execute.raise_for_execution_errors

    def check(nb: Any, output_path: Any) -> None:
        shown = copy.deepcopy(nb)
        for cell in shown.cells:
            if "raises-exception" in cell.get("metadata", {}).get("tags", []) and "outputs" in cell:
                cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
                cell.get("metadata", {}).get("papermill", {}).pop("exception", None)
        original(shown, output_path)  # on a real failure the saved copy lacks only the expected errors

    pm_execute.raise_for_execution_errors = check
    try:
        yield
    finally:
        pm_execute.raise_for_execution_errors = original


def failing_cells(executed_file: Path) -> list[str]:
    """'cell K (`first line`): Error: message' for every cell of an executed notebook that raised,
    except cells tagged ``raises-exception``; K counts the source's cells (papermill's excluded)."""
    import nbformat

    notebook = nbformat.read(executed_file, as_version=4)
    found, number = [], 0
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags or "papermill-error-cell-tag" in tags:
            continue  # cells papermill added
        number += 1
        if cell.cell_type != "code" or "raises-exception" in tags:
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = next((line for line in cell.source.splitlines() if line.strip()), "").strip()
                evalue = (str(output.get("evalue", "")).strip().splitlines() or [""])[0]
                found.append(f"cell {number} (`{first[:80]}`): {output.get('ename')}: {evalue[:300]}")
    return found


def _failure_message(chapter: Chapter, out: Path, exc: Any) -> str:
    """'chapter NN failed in cell K (...)', K counted in the source notebook (papermill's cells excluded)."""
    import nbformat

    executed = nbformat.read(out, as_version=4)
    injected = sum(1 for cell in executed.cells[: exc.cell_index]
                   if "injected-parameters" in cell.metadata.get("tags", []))
    cell_number = exc.cell_index - injected + 1
    first_line = next((line for line in exc.source.splitlines() if line.strip()), "").strip()
    evalue = str(exc.evalue).strip().splitlines()[0] if str(exc.evalue).strip() else ""
    return (f"chapter {chapter.name} failed in cell {cell_number} (`{first_line[:80]}`): "
            f"{exc.ename}: {evalue}  [traceback in {out}]")


HTML_ROW = "HTML build"


def write_times(root: Path, rows: dict[tuple[str, str], tuple[float, str, str]]) -> Path:
    """Merge ``{(chapter, config): (seconds, date, machine)}`` into the times table and write it."""
    file = root / TIMES_FILE
    table = read_times(file)
    if any(chapter == HTML_ROW for chapter, _ in rows):  # one build row: the latest build
        table = {key: value for key, value in table.items() if key[0] != HTML_ROW}
    table.update(rows)
    lines = [
        "# Execution times",
        "",
        "Wall-clock seconds per chapter, written by `python -m ftutils.book run` (do not edit by hand).",
        f"The `{HTML_ROW}` row is the latest `jupyter-book build`; the `{WHOLE_BOOK_ROW}` row is the last run",
        "of every chapter, start to end (chapters run two at a time where there are two cores, so each",
        "chapter's own row is measured beside another chapter). The budget for the whole book on",
        "`cpu-tiny` is 20 minutes on 2 CPU cores; numbers measured on a shared machine are noisy.",
        "",
        "| Chapter | Config | Seconds | Date (UTC) | Machine |",
        "|---|---|---:|---|---|",
    ]
    totals: dict[str, float] = {}
    walls: dict[str, tuple[float, str]] = {}
    for (chapter, config), (seconds, date, machine) in sorted(table.items()):
        lines.append(f"| {chapter} | {config} | {seconds:.1f} | {date} | {machine} |")
        if chapter == WHOLE_BOOK_ROW:
            walls[config] = (seconds, machine)
        elif chapter != HTML_ROW:
            totals[config] = totals.get(config, 0.0) + seconds
    lines.append("")
    for config, total in sorted(totals.items()):
        if config in walls:
            wall, machine = walls[config]
            lines.append(f"Whole book on `{config}`: {wall:.0f} s ({wall / 60:.1f} min) of wall-clock time ({machine}); "
                         f"the chapter rows add up to {total:.0f} s.")
        else:
            lines.append(f"Total for the chapters on `{config}`: {total:.0f} s ({total / 60:.1f} min).")
        lines.append("")
    _write_atomic(file, "\n".join(lines))
    _copy_into_readme(root, lines[lines.index("| Chapter | Config | Seconds | Date (UTC) | Machine |"):])
    return file


README_MARKERS = ("<!-- execution-times:start -->", "<!-- execution-times:end -->")


def _copy_into_readme(root: Path, table: list[str]) -> None:
    """Replace the text between the README's execution-time markers (if it has them) by ``table``."""
    readme = root / "README.md"
    if not readme.is_file():
        return
    text = readme.read_text()
    start, end = README_MARKERS
    if start not in text or end not in text:
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    _write_atomic(readme, head + start + "\n" + "\n".join(table).rstrip() + "\n" + end + tail)


SIZES_FILE = "book/chapter_sizes.md"


def write_sizes(root: Path) -> Path | None:
    """Write ``book/chapter_sizes.md``: what each chapter ran on ``cpu-tiny``, read from ``executed/``.

    Chapter 1 includes the table, so the book states the sizes each chapter really uses (recorded by
    :func:`ftutils.chapter.start` during the run) instead of a typed copy. Only chapters executed on
    ``cpu-tiny`` without ``-p`` overrides count; returns ``None`` when there is none.
    """
    import nbformat

    rows = []
    for chapter in chapters(root):
        file = chapter.executed(root)
        if not file.is_file():
            continue
        meta = nbformat.read(file, as_version=4).metadata.get("ftutils", {})
        ran = meta.get("book_config")
        if meta.get("config") != DEFAULT_CONFIG or meta.get("parameters") or not ran:
            continue
        every = lambda n: "all" if n is None else f"{n:,}"  # noqa: E731
        rows.append(f"| {chapter.name} | {every(ran['n_train'])} | {every(ran['n_eval'])} | {ran['max_length']} | "
                    f"{ran['epochs']} | {ran['batch_size']} | {ran['learning_rate']:g} | {ran['n_seeds']} |")
    if not rows:
        return None
    lines = ["<!-- Written by `python -m ftutils.book run` from what each chapter ran; do not edit. -->",
             "", "| Chapter | training examples | evaluation examples | max tokens | epochs | batch | "
             "learning rate | seeds per spread |", "|---|---:|---:|---:|---:|---:|---:|---:|", *rows, ""]
    out = root / SIZES_FILE
    _write_atomic(out, "\n".join(lines))
    return out


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_times(file: Path) -> dict[tuple[str, str], tuple[float, str, str]]:
    """The rows of an existing times table (empty if there is none)."""
    rows: dict[tuple[str, str], tuple[float, str, str]] = {}
    if not file.is_file():
        return rows
    for line in file.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("Chapter", "---") and not cells[0].startswith("-"):
            try:
                rows[(cells[0], cells[1])] = (float(cells[2]), cells[3], cells[4])
            except ValueError:
                continue
    return rows


def machine_description(config: str) -> str:
    """A short description of where the numbers were measured (cores available, GPU for ``gpu``)."""
    text = f"{cores()} CPU cores"
    if config != DEFAULT_CONFIG:
        try:
            import torch

            if torch.cuda.is_available():
                text += f", {torch.cuda.get_device_name(0)}"
        except ImportError:
            pass
    return text


# --------------------------------------------------------------------------------------------------
# Several chapters at once

# Thread-count variables a chapter's kernel (torch, NumPy's BLAS) reads at start-up.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WHOLE_BOOK_ROW = "whole book (wall clock)"


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_jobs() -> int:
    """How many chapters the runner executes at once unless told: 2 where there are 2 cores or more.

    On the book's 2-core reference machine, two chapters at one thread each do 1.29x the work of one
    chapter at a time on two threads (``benchmarks/bench_jobs.py``: chapter 4 for two seeds, 174 s one
    after the other, 135 s side by side): a MiniLM step at batch 8-16 keeps a second thread only partly
    busy.
    """
    return 2 if cores() >= 2 else 1


def threads_per_job(jobs: int) -> int:
    """Threads each chapter's kernel gets when ``jobs`` chapters run at once: the cores shared out."""
    return max(1, cores() // max(1, jobs))


def check_jobs(jobs: int) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BookError(f"--jobs {jobs!r} is not allowed: expected a whole number >= 1 "
                        f"(chapters executed at once; {default_jobs()} on this machine by default).")
    return jobs


def longest_first(root: Path, picked: Sequence[Chapter], config: str) -> list[Chapter]:
    """``picked`` ordered by the seconds each took last time on ``config`` (book/execution_times.md),
    longest first, so that the long chapters do not start last; chapters never timed go first."""
    known = {name: seconds for (name, label), (seconds, _, _) in read_times(root / TIMES_FILE).items()
             if label == config}
    return sorted(picked, key=lambda c: -known.get(c.name, float("inf")))


@dataclass(frozen=True)
class _Job:
    chapter: Chapter
    params: dict[str, Any]
    out: Path | None = None
    keep_going: bool = False
    smoke: bool = False


def _die_with_the_runner() -> None:
    """Linux: a worker process gets SIGTERM when the runner that started it dies (killed, say, by a CI
    timeout), and its kernel follows (ipykernel exits when its parent does), so no chapter keeps
    running unseen. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _execute_job(root: Path, job: _Job, config: str, timeout: int | None) -> float:
    return execute_chapter(root, job.chapter, config, job.params, timeout=timeout, out=job.out,
                           keep_going=job.keep_going, smoke=job.smoke)


def _execute_in_worker(root: Path, job: _Job, config: str, timeout: int | None, threads: int) -> float:
    """One chapter in a worker process, its kernel limited to ``threads`` threads (unless the caller
    set ``OMP_NUM_THREADS`` and friends itself)."""
    for name in THREAD_ENV:
        if not os.environ.get(name):  # an empty value counts as unset, as it does for OpenMP
            os.environ[name] = str(threads)
    return _execute_job(root, job, config, timeout)


def _execute_jobs(root: Path, config: str, jobs_to_run: Sequence[_Job], *, timeout: int | None, jobs: int,
                  stop_on_failure: bool) -> Any:
    """Execute ``jobs_to_run``, ``jobs`` at a time; yield ``(job, seconds or the BookError it raised)``
    as each finishes.

    With ``stop_on_failure`` no job starts after one failed; the running ones finish (their notebooks
    are written) and are yielded. ``jobs == 1`` executes in this process, one after the other.
    """
    if jobs <= 1 or len(jobs_to_run) <= 1:
        for job in jobs_to_run:
            try:
                yield job, _execute_job(root, job, config, timeout)
            except BookError as exc:
                yield job, exc
                if stop_on_failure:
                    return
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = threads_per_job(jobs)
    # spawn: a fresh interpreter per worker, never a fork of a process that may hold threads.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_die_with_the_runner) as pool:
        pending = {pool.submit(_execute_in_worker, root, job, config, timeout, threads): job for job in jobs_to_run}
        failed = False
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    outcome: float | BookError = future.result()
                except BookError as exc:
                    outcome = exc
                    failed = True
                yield job, outcome
            if failed and stop_on_failure:
                for future in list(pending):
                    if future.cancel():
                        pending.pop(future)
                if pending:
                    print("[book] a chapter failed: waiting for "
                          + ", ".join(job.chapter.name for job in pending.values()) + ", which already started",
                          flush=True)


def run(root: Path, config: str = DEFAULT_CONFIG, only: Sequence[str] | None = None,
        params: dict[str, Any] | None = None, *, build_html: bool = True,
        timeout: int | None = None, jobs: int = 1) -> dict[str, float]:
    """Execute the chosen chapters (all by default), ``jobs`` at a time, record their times, then build
    the HTML.

    Returns ``{chapter name: seconds}``. A failing chapter raises ``ChapterFailed`` (with ``jobs > 1``
    once the chapters already running have finished; none starts after it). Chapters are independent
    (each seeds its own draws), so running them side by side changes their times, not their results.
    """
    check_config(config)
    check_jobs(jobs)
    params = params or {}
    picked = chapters(root, only)
    if not picked:
        raise BookError(f"No chapters in {root / NOTEBOOK_DIR}: expected files named NN_name.py.")
    times: dict[str, float] = {}
    machine = machine_description(config)
    if jobs > 1 and len(picked) > 1:
        picked = longest_first(root, picked, config)
        machine += f", {jobs} chapters at a time"
        print(f"[book] executing {len(picked)} chapters (config {config}), {jobs} at a time with "
              f"{threads_per_job(jobs)} thread(s) each: {', '.join(c.name for c in picked)}", flush=True)
    label = config if not params else f"{config} " + " ".join(f"{k}={v}" for k, v in params.items())
    started = time.perf_counter()
    failure: BookError | None = None
    for job, outcome in _execute_jobs(root, config, [_Job(c, params) for c in picked], timeout=timeout, jobs=jobs,
                                      stop_on_failure=True):
        chapter = job.chapter
        if isinstance(outcome, BookError):
            failure = failure or outcome
            print(f"[book] FAILED {chapter.name}", flush=True)
            continue
        times[chapter.name] = outcome
        print(f"[book] {chapter.name}: {outcome:.1f} s", flush=True)
        write_times(root, {(chapter.name, label): (outcome, _today(), machine)})
        if not params:  # a run with other knobs (another SEED, say) does not replace the book's results
            record_results(root, chapter, config)
    if failure is not None:
        raise failure
    if only is None and not params:
        wall = time.perf_counter() - started
        print(f"[book] every chapter executed in {wall:.0f} s ({wall / 60:.1f} min) of wall-clock time", flush=True)
        write_times(root, {(WHOLE_BOOK_ROW, config): (wall, _today(), machine)})
    if config == DEFAULT_CONFIG and not params:
        write_sizes(root)
    if build_html:
        seconds = build(root)
        write_times(root, {(HTML_ROW, "-"): (seconds, _today(), machine_description(config))})
    return times


def record_results(root: Path, chapter: Chapter, config: str) -> Path:
    """Put the results rows of ``chapter``'s last run (``executed/``) into the config's results file,
    replacing that chapter's earlier rows, and regenerate ``book/results.md`` (``cpu-tiny`` only)."""
    import nbformat

    executed = nbformat.read(chapter.executed(root), as_version=4)
    rows = executed.metadata.get("ftutils", {}).get("results", [])
    file = results.results_file(root, config)
    results.merge(file, chapter.number, rows)
    results.write_page(root, config)
    return file


SEEDS_DIR = "executed/seeds"


def run_seeds(root: Path, seeds: Sequence[int], config: str = DEFAULT_CONFIG, only: Sequence[str] | None = None,
              params: dict[str, Any] | None = None, *, timeout: int | None = None,
              jobs: int = 1) -> dict[tuple[str, int], str]:
    """Execute the chapters once per seed (``-p SEED s``), ``jobs`` at a time, requiring only that
    every cell passes.

    Nothing is compared with recorded outputs: this checks that each claim's hidden assert holds for
    other seeds. Notebooks go to ``executed/seeds/seed-S/``; ``executed/`` and the times table are not
    touched. Every (chapter, seed) runs even after a failure, and every cell of a chapter even after a
    failing one, so one run lists all the claims that fail. Returns ``{(chapter, seed): problem}``
    for the failures (empty: all passed).
    """
    check_config(config)
    check_jobs(jobs)
    params = dict(params or {})
    if "SEED" in params:
        raise BookError("Give the seeds with --seeds, not -p SEED.")
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise BookError(f"--seeds {list(seeds)!r} is not allowed: expected non-negative integers, e.g. 0 1 2.")
    picked = longest_first(root, chapters(root, only), config) if jobs > 1 else chapters(root, only)
    todo = [_Job(chapter, {**params, "SEED": seed}, root / SEEDS_DIR / f"seed-{seed}" / f"{chapter.name}.ipynb",
                 keep_going=True) for chapter in picked for seed in seeds]
    print(f"[book] executing {len(todo)} chapter runs (config {config}, SEED {' '.join(map(str, seeds))}), "
          f"{jobs} at a time", flush=True)
    failures: dict[tuple[str, int], str] = {}
    for job, outcome in _execute_jobs(root, config, todo, timeout=timeout, jobs=jobs, stop_on_failure=False):
        name, seed = job.chapter.name, job.params["SEED"]
        if isinstance(outcome, BookError):
            failures[(name, seed)] = str(outcome)
            print(f"[book] FAILED {name} SEED {seed}: {outcome}", flush=True)
        else:
            print(f"[book] {name} SEED {seed}: passed in {outcome:.1f} s", flush=True)
    print(f"[book] seeds {' '.join(map(str, seeds))}: {len(todo) - len(failures)} of "
          f"{len(todo)} chapter runs passed", flush=True)
    for (name, seed), problem in sorted(failures.items()):
        print(f"[book]   SEED {seed}: {problem}", flush=True)
    return failures


SMOKE_DIR = "executed/smoke"
# Parameters-cell knobs that set a size of their own, at their smoke values (None: the config's size).
SMOKE_PARAMETERS: dict[str, dict[str, Any]] = {
    "02_core_concepts": {"FINETUNE_EXAMPLES": None},
    "07_evaluation": {"VARIANCE_SEEDS": 2, "N_BOOTSTRAP": 100},
    "08_instruction_tuning": {"N_BOOTSTRAP": 100},
}


def run_smoke(root: Path, config: str = "gpu", only: Sequence[str] | None = None,
              params: dict[str, Any] | None = None, *, timeout: int | None = None,
              jobs: int = 1) -> dict[str, str]:
    """Execute the chapters' ``config`` code paths on smoke-sized data, ``jobs`` at a time; return
    ``{chapter: problem}``.

    Every size is capped (:func:`ftutils.config.smoke_sized`, :data:`SMOKE_PARAMETERS`), the models and
    data are the registry's (offline), and cells tagged ``claims`` report a failing ``assert`` instead
    of raising (:func:`claims_reported`): tiny data proves no result, but every other cell must pass.
    Notebooks go to ``executed/smoke/<config>/``; ``executed/``, the times and the sizes tables are not
    touched. Every chapter runs even after one failed, and every cell even after a failing one.
    """
    check_config(config)
    check_jobs(jobs)
    picked = chapters(root, only)
    todo = [_Job(chapter, {**SMOKE_PARAMETERS.get(chapter.name, {}), **(params or {})},
                 root / SMOKE_DIR / config / f"{chapter.name}.ipynb", keep_going=True, smoke=True)
            for chapter in picked]
    print(f"[book] smoke-running {len(todo)} chapters (config {config}), {jobs} at a time", flush=True)
    failures: dict[str, str] = {}
    for job, outcome in _execute_jobs(root, config, todo, timeout=timeout, jobs=jobs, stop_on_failure=False):
        name, out = job.chapter.name, job.out
        if isinstance(outcome, BookError):
            failures[name] = str(outcome)
            print(f"[book] FAILED {name}: {outcome}", flush=True)
        else:
            unchecked = claims_not_checked(out)
            print(f"[book] {name}: passed in {outcome:.1f} s; {unchecked} of {claims_cells(out)} claims "
                  f"cells did not hold on smoke-sized data (reported in {out})", flush=True)
    print(f"[book] smoke {config}: {len(picked) - len(failures)} of {len(picked)} chapters passed", flush=True)
    for name, problem in sorted(failures.items()):
        print(f"[book]   {problem}", flush=True)
    return failures


def claims_cells(executed_file: Path) -> int:
    """How many cells of an executed notebook are tagged ``claims``."""
    import nbformat

    notebook = nbformat.read(executed_file, as_version=4)
    return sum(CLAIMS_TAG in c.metadata.get("tags", []) for c in notebook.cells)


def claims_not_checked(executed_file: Path) -> int:
    """How many claims cells of a smoke-run notebook printed that their claim did not hold."""
    import nbformat

    notebook = nbformat.read(executed_file, as_version=4)
    return sum(any(NOT_CHECKED in o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
               for c in notebook.cells if CLAIMS_TAG in c.metadata.get("tags", []))


def _today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------------------------------
# Building the HTML


def toc_files(root: Path) -> list[str]:
    """Every ``file:`` (and ``root:``) entry of ``_toc.yml``, in order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found: list[str] = [toc["root"]] if "root" in toc else []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return found


def missing_toc_files(root: Path) -> list[str]:
    """``_toc.yml`` entries with no ``.md``/``.ipynb`` file behind them."""
    return [entry for entry in toc_files(root)
            if not any((root / f"{entry}{suffix}").is_file() for suffix in ("", ".md", ".ipynb"))]


def build(root: Path) -> float:
    """``jupyter-book build . -W`` on the executed notebooks; returns seconds. Fails on any warning."""
    missing = missing_toc_files(root)
    if missing:
        hint = [m for m in missing if m.startswith(f"{EXECUTED_DIR}/")]
        advice = (f" Execute them first: python -m ftutils.book run --only "
                  f"{' '.join(Path(m).name[:2] for m in hint)}" if hint else "")
        raise BookError(f"_toc.yml lists {', '.join(missing)} but no such file exists.{advice}")
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb) if jb.exists() else "jupyter-book", "build", str(root), "-W", "-n", "--keep-going"]
    print(f"[book] {' '.join(command)}", flush=True)
    started = time.perf_counter()
    env = {**os.environ, **OFFLINE_ENV}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        problems = [line for line in log if "WARNING" in line or "ERROR" in line] or log[-15:]
        raise BookError("jupyter-book build failed (warnings are errors):\n  " + "\n  ".join(problems[:30]))
    cdn = cdn_mathjax_pages(root / "_build" / "html")
    if cdn:
        raise BookError(f"{len(cdn)} page(s) load MathJax from the internet, e.g. {cdn[0]}: "
                        "the book must read equations offline (see book/_ext/offline_mathjax.py).")
    print(f"[book] HTML in {root / '_build' / 'html'} ({seconds:.1f} s)", flush=True)
    return seconds


def cdn_mathjax_pages(html_dir: Path) -> list[Path]:
    """HTML pages whose ``<script src=...>`` fetches MathJax from a remote host."""
    pattern = re.compile(r"<script[^>]+src=\"(https?:)?//[^\"]*mathjax", re.IGNORECASE)
    return [page for page in sorted(html_dir.rglob("*.html")) if pattern.search(page.read_text(errors="ignore"))]


# --------------------------------------------------------------------------------------------------
# Colab notebooks


def repository(root: Path) -> tuple[str, str]:
    """``(url, branch)`` of the repository, read from ``_config.yml`` (the one place it lives)."""
    import yaml

    repo = (yaml.safe_load((root / "_config.yml").read_text()) or {}).get("repository") or {}
    url = str(repo.get("url", "")).rstrip("/")
    if not url.startswith("https://github.com/"):
        raise BookError(f"_config.yml repository.url is {url!r}: expected https://github.com/OWNER/NAME.")
    return url, str(repo.get("branch") or "main")


def colab_url(root: Path, chapter_name: str) -> str:
    """The URL that opens ``colab/NN_name.ipynb`` of the repository in Google Colab."""
    url, branch = repository(root)
    return (f"https://colab.research.google.com/github/{url.removeprefix('https://github.com/')}"
            f"/blob/{branch}/{COLAB_DIR}/{chapter_name}.ipynb")


# The packages whose versions a reader's runtime decides (Colab preinstalls them).
_TESTED_PACKAGES = ("torch", "transformers", "datasets", "accelerate")


def versions_tested(root: Path) -> str:
    """The versions ``make stack-floor`` and ``make stack-colab`` test, read from the files they use.

    Example:
        >>> print(versions_tested(find_root(None)))  # doctest: +ELLIPSIS
        at the floor of each range (torch 2..., transformers 4..., datasets 3..., accelerate 1...)
        and on a Colab stack (torch 2..., transformers 4..., datasets 4..., accelerate 1...)
    """
    pyproject_file, stack_file = root / "pyproject.toml", root / ".ci" / "colab-stack.txt"
    pyproject = pyproject_file.read_text() if pyproject_file.is_file() else ""
    floors = {name: re.search(rf'"{re.escape(name)}>=([0-9][^,"]*)', pyproject) for name in _TESTED_PACKAGES}
    colab = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", stack_file.read_text(), re.M)) if stack_file.is_file() else {}
    floor_text = ", ".join(f"{name} {m.group(1)}" for name, m in floors.items() if m)
    colab_text = ", ".join(f"{name} {colab[name]}" for name in _TESTED_PACKAGES if name in colab)
    parts = [f"at the floor of each range ({floor_text})" if floor_text else "",
             f"on a Colab stack ({colab_text})" if colab_text else ""]
    return "\nand ".join(part for part in parts if part)


def setup_cell_source(root: Path, chapter: Chapter) -> str:
    """The first cell of a Colab notebook: install ftutils and fetch the chapter's assets, on Colab only."""
    url, branch = repository(root)
    text = chapter.source.read_text()
    keys = [k for k in _PREFETCHABLE if re.search(rf"[\"']{re.escape(k)}[\"']", text)]
    # Chapters name models through the config (cfg.encoder / cfg.decoder): prefetch the defaults.
    if "cfg.decoder" in text and "smollm2-135m" not in keys:
        keys.insert(0, "smollm2-135m")
    if "cfg.encoder" in text and "minilm" not in keys:
        keys.insert(0, "minilm")
    fetch = ""
    if keys:
        fetch = ("\n    subprocess.run([sys.executable, \"-m\", \"ftutils.assets\", \"fetch\", "
                 + ", ".join(f'"{k}"' for k in keys) + "], check=True)")
    return (
        "# Colab only: install the book's package and fetch this chapter's models and data.\n"
        "# Anywhere else this cell does nothing. (Generated by `python -m ftutils.book sync`.)\n"
        "import sys\n"
        "\n"
        "if \"google.colab\" in sys.modules:\n"
        "    import importlib\n"
        "    import subprocess\n"
        "\n"
        "    # The package asks for version ranges, so pip keeps Colab's own torch.\n"
        + "".join(f"    # {'Tested ' if i == 0 else ''}{line}\n"
                  for i, line in enumerate(versions_tested(root).splitlines())) +
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\",\n"
        f"                    \"ftutils[extras] @ git+{url}@{branch}\"], check=True)\n"
        "    importlib.invalidate_caches()"
        f"{fetch}"
    )


def expected_colab(root: Path, chapter: Chapter) -> Any:
    """The Colab notebook for ``chapter`` without outputs: setup cell + the chapter's cells."""
    import nbformat

    notebook = read_source(chapter)
    setup = nbformat.v4.new_code_cell(setup_cell_source(root, chapter))
    setup.metadata["tags"] = [SETUP_TAG, "remove-cell"]
    notebook.cells.insert(0, setup)
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:03d}"  # stable ids keep regenerated notebooks' diffs small
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["colab"] = {"name": f"{chapter.name}.ipynb", "provenance": []}
    return notebook


def _inputs(notebook: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", [])))
            for c in notebook.cells if "injected-parameters" not in c.metadata.get("tags", [])]


def sync(root: Path, only: Sequence[str] | None = None) -> list[Path]:
    """Write ``colab/NN_name.ipynb`` for each chapter; copy outputs from a matching ``cpu-tiny`` run.

    Outputs are copied only from ``executed/NN_name.ipynb`` executed with ``--config cpu-tiny`` and
    no ``-p`` overrides, whose cells equal the current source (otherwise the notebook has no outputs
    and a message says so).
    """
    import nbformat

    written = []
    for chapter in chapters(root, only):
        notebook = expected_colab(root, chapter)
        executed_file = chapter.executed(root)
        note = "no outputs (run `python -m ftutils.book run --only " + chapter.number + "` first)"
        if executed_file.is_file():
            executed = nbformat.read(executed_file, as_version=4)
            meta = executed.metadata.get("ftutils", {})
            cells = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
            if not meta:
                note = "no outputs (the last run of this chapter did not finish)"
            elif meta.get("config") != DEFAULT_CONFIG or meta.get("parameters"):
                note = f"no outputs (last run used {meta.get('config')} {meta.get('parameters') or ''})"
            elif _inputs(executed) != _inputs(notebook)[1:]:
                note = "no outputs (the source changed since the last run)"
            else:
                for target, done in zip(notebook.cells[1:], cells):
                    if target.cell_type == "code":
                        target.outputs = copy.deepcopy(done.get("outputs", []))
                        target.execution_count = done.get("execution_count")
                note = f"outputs of the {DEFAULT_CONFIG} run"
        out = chapter.colab(root)
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(notebook)
        nbformat.write(notebook, out)
        written.append(out)
        print(f"[book] {out.relative_to(root)}: {note}", flush=True)
    return written


def check_sync(root: Path) -> list[str]:
    """Problems that make ``colab/`` differ from ``notebooks/`` (empty list = in sync)."""
    import nbformat

    problems = []
    sources = chapters(root)
    for chapter in sources:
        file = chapter.colab(root)
        if not file.is_file():
            problems.append(f"{file.relative_to(root)} is missing: run `python -m ftutils.book sync`.")
            continue
        have = _inputs(nbformat.read(file, as_version=4))
        want = _inputs(expected_colab(root, chapter))
        if have != want:
            index = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
            problems.append(
                f"{file.relative_to(root)} differs from {chapter.source.relative_to(root)} at cell "
                f"{index + 1} ({len(have)} vs {len(want)} cells): run `python -m ftutils.book sync`.")
    names = {c.name for c in sources}
    for extra in sorted((root / COLAB_DIR).glob("*.ipynb")) if (root / COLAB_DIR).is_dir() else []:
        if extra.stem not in names:
            problems.append(f"{extra.relative_to(root)} has no source in {NOTEBOOK_DIR}/: delete it.")
    return problems


# --------------------------------------------------------------------------------------------------
# Comparing a fresh run with the recorded outputs

CHECK_TAG = "nbval-check-output"
SANITIZE_FILE = "tests/nbval_sanitize.cfg"


def sanitizers(root: Path) -> list[tuple[re.Pattern[str], str]]:
    """The (regex, replacement) pairs of ``tests/nbval_sanitize.cfg`` -- the rules nbval applies too."""
    import configparser

    file = root / SANITIZE_FILE
    if not file.is_file():
        return []
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(file)
    return [(re.compile(parser[section]["regex"]), parser[section]["replace"]) for section in parser.sections()]


def checked_outputs(notebook: Any, rules: Sequence[tuple[re.Pattern[str], str]]) -> list[tuple[str, str]]:
    """``(cell source, sanitised text)`` of every cell tagged ``nbval-check-output``: printed text and
    plain-text results, as nbval compares them (pictures are not compared)."""
    found = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or CHECK_TAG not in cell.metadata.get("tags", []):
            continue
        parts = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif output.get("output_type") in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
            elif output.get("output_type") == "error":
                parts.append(f"{output.get('ename')}: {output.get('evalue')}")
        text = "".join(p if isinstance(p, str) else "".join(p) for p in parts)
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        found.append((cell.source.strip(), text))
    return found


def compare(root: Path, only: Sequence[str] | None = None) -> list[str]:
    """Differences between ``executed/`` and the recorded outputs in ``colab/``, checked cells only.

    CI executes the book on an empty cache (``make book``) and compares it with the outputs recorded
    on a warm one: a result that depends on cache state or on what ran before shows up here, named
    by chapter and cell. Returns one line per difference (empty: identical).
    """
    import nbformat

    rules = sanitizers(root)
    problems = []
    for chapter in chapters(root, only):
        fresh_file, recorded_file = chapter.executed(root), chapter.colab(root)
        if not fresh_file.is_file() or not recorded_file.is_file():
            problems.append(f"{chapter.name}: needs both {fresh_file.relative_to(root)} and "
                            f"{recorded_file.relative_to(root)} (run the chapter, then `sync`).")
            continue
        fresh = checked_outputs(nbformat.read(fresh_file, as_version=4), rules)
        recorded = checked_outputs(nbformat.read(recorded_file, as_version=4), rules)
        if [src for src, _ in fresh] != [src for src, _ in recorded]:
            problems.append(f"{chapter.name}: the checked cells differ in source; run `python -m ftutils.book sync`.")
            continue
        for index, ((source, now), (_, before)) in enumerate(zip(fresh, recorded), 1):
            if now != before:
                first = next((a for a, b in zip(now.splitlines(), before.splitlines()) if a != b), now[:80])
                problems.append(f"{chapter.name}, checked cell {index} (`{source.splitlines()[0][:60]}`): "
                                f"output differs, e.g. now `{first.strip()[:100]}`")
    return problems


# --------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ftutils.book", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found upward)")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute chapters with papermill, then build the HTML")
    run_p.add_argument("--config", default=DEFAULT_CONFIG, help="cpu-tiny (default) or gpu")
    run_p.add_argument("--only", nargs="+", metavar="CHAPTER", help="numbers or names, e.g. 02 04")
    run_p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                       help="override a parameters-cell value, e.g. -p N_REVIEWS 200 (repeatable)")
    run_p.add_argument("--no-build", action="store_true", help="execute only; do not build the HTML")
    run_p.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell")
    run_p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                       help=f"chapters executed at once, the cores shared among them (default {default_jobs()} "
                            "here: 2 where there are 2 cores or more)")
    run_p.add_argument("--smoke", action="store_true",
                       help="run the config's code paths on tiny data into executed/smoke/ (claims reported, "
                            "not asserted); no HTML, no times")
    run_p.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                       help="execute once per seed into executed/seeds/ and only require every cell "
                            "(claims' asserts included) to pass; no HTML, no times")
    sub.add_parser("build", help="build the HTML from executed/ (jupyter-book build -W)")
    sync_p = sub.add_parser("sync", help="regenerate colab/*.ipynb from notebooks/*.py")
    sync_p.add_argument("--only", nargs="+", metavar="CHAPTER")
    sub.add_parser("check-sync", help="fail if colab/*.ipynb inputs differ from notebooks/*.py")
    compare_p = sub.add_parser("compare", help="fail if executed/ differs from the outputs recorded in colab/ "
                                               "(cells tagged nbval-check-output, nbval's sanitising rules)")
    compare_p.add_argument("--only", nargs="+", metavar="CHAPTER")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            check_config(args.config)  # before anything slow
            if args.smoke and args.seeds is not None:
                raise BookError("--smoke and --seeds do not go together: a smoke run checks code paths, "
                                "not results; run them separately.")
            params = parse_parameters(args.parameter)
            root = find_root(args.root)
            jobs = check_jobs(default_jobs() if args.jobs is None else args.jobs)
            if args.smoke:
                return 1 if run_smoke(root, args.config, args.only, params, timeout=args.timeout, jobs=jobs) else 0
            if args.seeds is not None:
                return 1 if run_seeds(root, args.seeds, args.config, args.only, params, timeout=args.timeout,
                                      jobs=jobs) else 0
            run(root, args.config, args.only, params, build_html=not args.no_build, timeout=args.timeout, jobs=jobs)
        elif args.command == "build":
            root = find_root(args.root)
            seconds = build(root)
            write_times(root, {(HTML_ROW, "-"): (seconds, _today(), machine_description(""))})
        elif args.command == "sync":
            sync(find_root(args.root), args.only)
        elif args.command == "check-sync":
            problems = check_sync(find_root(args.root))
            for problem in problems:
                print(f"[book] {problem}", file=sys.stderr)
            if problems:
                return 1
            print("[book] colab/ is in sync with notebooks/")
        elif args.command == "compare":
            problems = compare(find_root(args.root), args.only)
            for problem in problems:
                print(f"[book] {problem}", file=sys.stderr)
            if problems:
                return 1
            print("[book] every checked output of executed/ equals the recorded one in colab/")
    except BookError as exc:
        print(f"[book] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
