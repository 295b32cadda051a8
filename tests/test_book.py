"""Tests of the book runner (ftutils.book) and the Colab helper (ftutils.colab).

Most tests build a throw-away book in a temp folder; the one that executes notebooks starts a
real kernel on a two-cell notebook (a few seconds).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from ftutils import book, colab

REPO = Path(__file__).resolve().parents[1]

CONFIG_YML = """\
title: test book
repository:
  url: https://github.com/example-owner/example-book
  branch: dev
"""


def chapter_source(body: str) -> str:
    return textwrap.dedent('''\
        # %% [markdown]
        # # A tiny chapter

        # %% tags=["parameters"]
        CONFIG = "cpu-tiny"
        N_ITEMS = 3

        # %%
        ''') + textwrap.dedent(body)


@pytest.fixture()
def tiny_book(tmp_path: Path) -> Path:
    (tmp_path / "_config.yml").write_text(CONFIG_YML)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_ok.py").write_text(chapter_source(
        'from ftutils.config import get_config\ncfg = get_config(CONFIG)\nprint(cfg.name, N_ITEMS * 2)\n'))
    return tmp_path


# ------------------------------------------------------------------------------------------------
# Arguments


def test_unknown_config_fails_at_once_naming_allowed_values(tmp_path, capsys):
    started = time.perf_counter()
    code = book.main(["--root", str(tmp_path), "run", "--config", "tpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "'tpu'" in err and "cpu-tiny" in err and "gpu" in err
    assert time.perf_counter() - started < 5  # failed before looking for (or running) any chapter


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("3e-5", 3e-5), ("None", None), ("True", True), ("minilm", "minilm"),
    ("cpu-tiny", "cpu-tiny"), ("[1, 2]", [1, 2]), ("'quoted'", "quoted"),
])
def test_parse_value_reads_literals_and_keeps_other_text(text, value):
    assert book.parse_value(text) == value


def test_parse_parameters_builds_dict_and_rejects_bad_names():
    assert book.parse_parameters([("A", "1"), ("B", "x"), ("A", "2")]) == {"A": 2, "B": "x"}
    with pytest.raises(book.BookError, match="not a Python identifier"):
        book.parse_parameters([("n-items", "3")])
    with pytest.raises(book.BookError, match="--config"):
        book.parse_parameters([("CONFIG", "gpu")])


def test_command_line_p_flags_reach_the_parameter_check(tiny_book, capsys):
    code = book.main(["--root", str(tiny_book), "run", "--no-build", "-p", "N_ITEM", "4"])
    err = capsys.readouterr().err
    assert code == 1
    assert "01_ok has no parameter N_ITEM" in err and "CONFIG, N_ITEMS" in err


def test_only_selects_by_number_or_name_and_rejects_unknown(tiny_book):
    (tiny_book / "notebooks" / "02_more.py").write_text(chapter_source("print(1)\n"))
    (tiny_book / "notebooks" / "helper.py").write_text("x = 1\n")  # not a chapter name
    assert [c.name for c in book.chapters(tiny_book)] == ["01_ok", "02_more"]
    assert [c.name for c in book.chapters(tiny_book, ["2"])] == ["02_more"]
    assert [c.name for c in book.chapters(tiny_book, ["02_more", "01"])] == ["01_ok", "02_more"]
    with pytest.raises(book.BookError, match="01_ok, 02_more"):
        book.chapters(tiny_book, ["07"])


# ------------------------------------------------------------------------------------------------
# Executing


def test_run_executes_with_parameters_and_a_failing_chapter_names_its_cell(tiny_book):
    times = book.run(tiny_book, "cpu-tiny", ["01"], {"N_ITEMS": 21}, build_html=False)
    executed = nbformat.read(tiny_book / "executed" / "01_ok.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "cpu-tiny 42" in printed
    assert executed.metadata["ftutils"] == {"config": "cpu-tiny", "parameters": {"N_ITEMS": 21},
                                            "seconds": round(times["01_ok"], 1), "book_config": None, "results": []}
    table = (tiny_book / book.TIMES_FILE).read_text()
    assert "| 01_ok | cpu-tiny N_ITEMS=21 |" in table

    (tiny_book / "notebooks" / "03_broken.py").write_text(chapter_source(
        "x = 1\n\n# %%\nraise ValueError(f'no such column: {N_ITEMS}')\n"))
    with pytest.raises(book.ChapterFailed) as failure:
        book.run(tiny_book, "cpu-tiny", ["03"], build_html=False)
    message = str(failure.value)
    # Cells of the source: markdown, parameters, `x = 1`, the raise -> cell 4 (papermill's cell not counted).
    assert "chapter 03_broken failed in cell 4" in message
    assert "ValueError: no such column: 3" in message


def test_a_chapter_kernel_prints_no_tqdm_widget_warning(tiny_book):
    """Without ipywidgets, importing tqdm.auto in a kernel warns with the venv's path; the runner hides it."""
    (tiny_book / "notebooks" / "02_tqdm.py").write_text(chapter_source("import tqdm.auto\nprint('imported')\n"))
    book.run(tiny_book, "cpu-tiny", ["02"], build_html=False)
    executed = nbformat.read(tiny_book / "executed" / "02_tqdm.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "imported" in printed and "IProgress" not in printed, printed


def test_times_table_merges_rows_and_totals_per_config(tmp_path):
    book.write_times(tmp_path, {("01_a", "cpu-tiny"): (10.0, "d", "m"), ("02_b", "cpu-tiny"): (5.0, "d", "m")})
    book.write_times(tmp_path, {("01_a", "cpu-tiny"): (12.0, "d2", "m"), ("HTML build", "cpu-tiny"): (30.0, "d", "m")})
    rows = book.read_times(tmp_path / book.TIMES_FILE)
    assert rows[("01_a", "cpu-tiny")] == (12.0, "d2", "m")
    assert len(rows) == 3
    assert "Total for the chapters on `cpu-tiny`: 17 s" in (tmp_path / book.TIMES_FILE).read_text()
    book.write_times(tmp_path, {("HTML build", "-"): (4.0, "d3", "m")})
    builds = [key for key in book.read_times(tmp_path / book.TIMES_FILE) if key[0] == "HTML build"]
    assert builds == [("HTML build", "-")], "one row for the latest build"


# ------------------------------------------------------------------------------------------------
# Colab notebooks


def test_check_sync_detects_drift_missing_and_orphan_notebooks(tiny_book):
    assert any("missing" in p for p in book.check_sync(tiny_book))
    book.sync(tiny_book)
    assert book.check_sync(tiny_book) == []

    source = tiny_book / "notebooks" / "01_ok.py"
    source.write_text(source.read_text().replace("N_ITEMS * 2", "N_ITEMS * 3"))
    problems = book.check_sync(tiny_book)
    assert len(problems) == 1 and "colab/01_ok.ipynb differs" in problems[0] and "cell 4" in problems[0]

    book.sync(tiny_book)
    (tiny_book / "colab" / "09_gone.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    assert book.check_sync(tiny_book) == ["colab/09_gone.ipynb has no source in notebooks/: delete it."]


def test_colab_notebook_starts_with_an_install_cell_from_the_config_url(tiny_book):
    book.sync(tiny_book)
    notebook = nbformat.read(tiny_book / "colab" / "01_ok.ipynb", as_version=4)
    setup = notebook.cells[0]
    assert setup.metadata["tags"] == [book.SETUP_TAG, "remove-cell"]
    assert "git+https://github.com/example-owner/example-book@dev" in setup.source
    assert '"google.colab" in sys.modules' in setup.source
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert book.colab_url(tiny_book, "01_ok") == (
        "https://colab.research.google.com/github/example-owner/example-book/blob/dev/colab/01_ok.ipynb")
    # Outside Colab the cell does nothing: executing it must not try to install anything.
    namespace: dict = {}
    exec(compile(setup.source, "setup", "exec"), namespace)
    assert "subprocess" not in namespace


def test_colab_install_cell_names_the_versions_the_stack_checks_test(tiny_book):
    (tiny_book / "pyproject.toml").write_text('dependencies = ["torch>=2.8", "transformers>=4.56.2,<6"]\n')
    (tiny_book / ".ci").mkdir(exist_ok=True)
    (tiny_book / ".ci" / "colab-stack.txt").write_text("# Colab\ntorch==2.9.1\ndatasets==4.0.0\n")
    source = book.setup_cell_source(tiny_book, book.chapters(tiny_book)[0])
    assert "# Tested at the floor of each range (torch 2.8, transformers 4.56.2)\n" in source
    assert "# and on a Colab stack (torch 2.9.1, datasets 4.0.0)\n" in source
    # The real repository: the cell quotes the floors pyproject.toml declares.
    assert "torch " + book.re.search(r'"torch>=([0-9.]+)', (REPO / "pyproject.toml").read_text()).group(1) \
        in book.versions_tested(REPO)


def test_sync_copies_outputs_only_from_a_matching_default_run(tiny_book):
    book.run(tiny_book, "cpu-tiny", None, {"N_ITEMS": 5}, build_html=False)
    book.sync(tiny_book)
    outputs = [c.outputs for c in nbformat.read(tiny_book / "colab" / "01_ok.ipynb", as_version=4).cells
               if c.cell_type == "code"]
    assert all(not o for o in outputs)  # a run with -p overrides is not what a Colab reader will see

    book.run(tiny_book, "cpu-tiny", None, {}, build_html=False)
    book.sync(tiny_book)
    colab_nb = nbformat.read(tiny_book / "colab" / "01_ok.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in colab_nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "cpu-tiny 6" in printed
    assert book.check_sync(tiny_book) == []


def test_auto_config_switches_only_the_default_on_a_colab_gpu(monkeypatch):
    assert colab.auto_config("cpu-tiny") in ("cpu-tiny", "gpu") if colab.on_colab() else True
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setattr(colab, "cuda_available", lambda: True)
    monkeypatch.delenv(colab.KEEP_ENV, raising=False)
    assert colab.auto_config("cpu-tiny") == "gpu"
    assert colab.auto_config("gpu") == "gpu"
    monkeypatch.setenv(colab.KEEP_ENV, "1")
    assert colab.auto_config("cpu-tiny") == "cpu-tiny"
    monkeypatch.delenv(colab.KEEP_ENV)
    monkeypatch.setattr(colab, "cuda_available", lambda: False)
    assert colab.auto_config("cpu-tiny") == "cpu-tiny"
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.setattr(colab, "cuda_available", lambda: True)
    assert colab.auto_config("cpu-tiny") == "cpu-tiny"


# ------------------------------------------------------------------------------------------------
# Building


def test_build_refuses_a_toc_entry_without_a_file_and_says_how_to_make_it(tiny_book):
    (tiny_book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: executed/01_ok\n")
    (tiny_book / "intro.md").write_text("# Intro\n")
    with pytest.raises(book.BookError, match=r"executed/01_ok.*run --only 01"):
        book.build(tiny_book)


def test_cdn_mathjax_pages_finds_remote_scripts_only(tmp_path):
    (tmp_path / "remote.html").write_text('<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>')
    (tmp_path / "local.html").write_text('<script defer src="_static/mathjax/tex-chtml.js"></script>')
    assert book.cdn_mathjax_pages(tmp_path) == [tmp_path / "remote.html"]


def test_colab_badge_link_is_built_from_the_repository_url():
    spec = importlib.util.spec_from_file_location("colab_badge", REPO / "book" / "_ext" / "colab_badge.py")
    badge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(badge)
    assert badge.colab_link("https://github.com/o/r/", "main", "02_x") == (
        "https://colab.research.google.com/github/o/r/blob/main/colab/02_x.ipynb")


# ------------------------------------------------------------------------------------------------
# The repository itself (what CI checks)


def test_repository_colab_notebooks_are_in_sync_with_sources():
    assert book.check_sync(REPO) == []


def test_repository_toc_lists_every_chapter_and_only_existing_sources():
    entries = book.toc_files(REPO)
    chapters = {c.name for c in book.chapters(REPO)}
    executed = {Path(e).name for e in entries if e.startswith("executed/")}
    assert executed == chapters, "every notebooks/NN_name.py must appear in _toc.yml as executed/NN_name"
    pages = [e for e in entries if not e.startswith("executed/")]
    assert [p for p in pages if not (REPO / f"{p}.md").is_file()] == []


def test_every_chapter_parameter_is_visible_to_papermill():
    # papermill silently drops a parameter whose help comment it cannot parse (an "=" in the
    # comment does it); `papermill --help-notebook` would then hide that knob from readers.
    from papermill.translators import PythonTranslator

    for chapter in book.chapters(REPO):
        notebook = book.read_source(chapter)
        cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        seen = [p.name for p in PythonTranslator.inspect(cell)]
        assert seen == book.parameter_names(notebook), chapter.name
        assert seen[0] == "CONFIG", chapter.name


def test_a_cell_tagged_raises_exception_may_fail_but_any_other_failure_stops_the_run(tiny_book):
    (tiny_book / "notebooks" / "01_ok.py").write_text(chapter_source('''\
        print("before")

        # %% tags=["raises-exception"]
        undefined_name

        # %%
        print("after", N_ITEMS)
        '''))
    book.run(tiny_book, only=["01"], build_html=False)
    executed = nbformat.read(tiny_book / "executed" / "01_ok.ipynb", as_version=4)
    errors = [o.ename for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == ["NameError"]  # the expected error is kept for readers
    assert "after 3" in "".join(o.get("text", "") for o in executed.cells[-1].outputs)

    (tiny_book / "notebooks" / "01_ok.py").write_text(chapter_source('''\
        # %% tags=["raises-exception"]
        undefined_name

        # %%
        1 / 0
        '''))
    with pytest.raises(book.ChapterFailed, match="ZeroDivisionError"):
        book.run(tiny_book, only=["01"], build_html=False)


def test_times_table_is_copied_between_the_readme_markers(tmp_path):
    start, end = book.README_MARKERS
    (tmp_path / "README.md").write_text(f"# Book\n\n{start}\nold table\n{end}\n\nLicences.\n")
    book.write_times(tmp_path, {("02_core", "cpu-tiny"): (12.5, "2026-01-01 00:00", "2 CPU cores")})
    readme = (tmp_path / "README.md").read_text()
    assert "old table" not in readme
    assert "| 02_core | cpu-tiny | 12.5 |" in readme
    assert readme.endswith(f"{end}\n\nLicences.\n")


def test_run_seeds_executes_every_seed_and_reports_each_failing_one(tiny_book):
    (tiny_book / "notebooks" / "02_claim.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        CONFIG = "cpu-tiny"
        SEED = 0

        # %%
        assert SEED != 1, "the claim fails for this seed"
        print("claim holds", SEED)

        # %%
        assert SEED != 1, "a later claim fails too"
        '''))
    failures = book.run_seeds(tiny_book, [0, 1], only=["02"])
    assert list(failures) == [("02_claim", 1)]
    assert "cell 2 (`assert SEED != 1, \"the claim fails" in failures[("02_claim", 1)]
    assert "cell 3 (`assert SEED != 1, \"a later claim" in failures[("02_claim", 1)]
    passed = nbformat.read(tiny_book / book.SEEDS_DIR / "seed-0" / "02_claim.ipynb", as_version=4)
    assert "claim holds 0" in passed.cells[-2].outputs[0]["text"]
    assert not (tiny_book / "executed" / "02_claim.ipynb").exists()
    assert not (tiny_book / book.TIMES_FILE).exists()
    with pytest.raises(book.BookError, match="--seeds"):
        book.run_seeds(tiny_book, [-1])


def test_compare_finds_a_changed_checked_output_and_ignores_the_rest(tiny_book):
    (tiny_book / "notebooks" / "01_ok.py").write_text(chapter_source('''\
        print("took 3.2 s")

        # %% tags=["nbval-check-output"]
        print("accuracy", N_ITEMS)

        # %%
        print("unchecked", N_ITEMS)
        '''))
    book.run(tiny_book, "cpu-tiny", ["01"], build_html=False)
    book.sync(tiny_book)
    assert book.compare(tiny_book) == []
    book.run(tiny_book, "cpu-tiny", ["01"], {"N_ITEMS": 4}, build_html=False)
    problems = book.compare(tiny_book)
    assert len(problems) == 1 and "01_ok, checked cell 1" in problems[0] and "accuracy 4" in problems[0]


def test_sanitizers_read_the_nbval_rules_of_the_repository():
    rules = book.sanitizers(REPO)
    text = "trained in 12.5 s at 40 samples/s"
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    assert text == "trained in <DURATION> at <RATE>"


def test_sizes_table_is_written_from_what_chapters_ran(tiny_book):
    (tiny_book / "notebooks" / "02_sized.py").write_text(chapter_source(
        'from ftutils import chapter\ncfg = chapter.start(CONFIG, 0, {"cpu-tiny": {"epochs": 1, "n_train": 96}})\n'))
    book.run(tiny_book, "cpu-tiny", ["02"], build_html=False)
    table = (tiny_book / book.SIZES_FILE).read_text()
    assert "| 02_sized | 96 | 500 | 64 | 1 | 32 | 5e-05 | 3 |" in table
    assert "01_ok" not in table  # never executed here
    book.run(tiny_book, "cpu-tiny", ["02"], {"N_ITEMS": 5}, build_html=False)  # a run with -p: table kept
    assert (tiny_book / book.SIZES_FILE).read_text() == table


def test_smoke_run_reports_failing_claims_but_fails_on_other_errors(tiny_book):
    (tiny_book / "notebooks" / "02_smoke.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        CONFIG = "cpu-tiny"
        SEED = 0

        # %%
        from ftutils import chapter
        cfg = chapter.start(CONFIG, SEED, chapter="07")
        print("sizes", cfg.n_train, cfg.chapter.sizes)

        # %% tags=["remove-cell", "claims"]
        assert cfg.n_train > 100, "a result that tiny data cannot show"

        # %% tags=["remove-cell", "claims"]
        assert cfg.name == "gpu"
        '''))
    (tiny_book / "notebooks" / "03_typo.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        CONFIG = "cpu-tiny"

        # %% tags=["remove-cell", "claims"]
        assert undefined_name > 0
        '''))
    failures = book.run_smoke(tiny_book, "gpu", only=["02", "03"])
    assert list(failures) == ["03_typo"] and "NameError" in failures["03_typo"]  # a typo is not a claim
    assert "cell 2 (`# assert undefined_name > 0" in failures["03_typo"]
    ran = nbformat.read(tiny_book / book.SMOKE_DIR / "gpu" / "02_smoke.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in ran.cells for o in c.get("outputs", []))
    assert "SMOKE RUN of config gpu" in printed and "sizes 48 (16, 32)" in printed
    assert printed.count(book.NOT_CHECKED) == 1 and "a result that tiny data cannot show" in printed
    assert book.claims_not_checked(tiny_book / book.SMOKE_DIR / "gpu" / "02_smoke.ipynb") == 1
    assert not (tiny_book / "executed" / "02_smoke.ipynb").exists() and not (tiny_book / book.TIMES_FILE).exists()


def test_a_normal_run_asserts_claims_cells(tiny_book):
    (tiny_book / "notebooks" / "02_claim.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        CONFIG = "cpu-tiny"

        # %% tags=["remove-cell", "claims"]
        assert CONFIG == "gpu", "only on gpu"
        '''))
    with pytest.raises(book.ChapterFailed, match="only on gpu"):
        book.run(tiny_book, "cpu-tiny", ["02"], build_html=False)


def test_smoke_and_seeds_together_are_refused(tmp_path, capsys):
    assert book.main(["--root", str(tmp_path), "run", "--config", "gpu", "--smoke", "--seeds", "0"]) == 1
    assert "--smoke and --seeds" in capsys.readouterr().err


def test_every_chapter_tags_its_claims_and_the_smoke_knobs_exist():
    # a claims tag on a cell the book shows would hide nothing but change nothing either: claims are hidden cells
    for chapter in book.chapters(REPO):
        notebook = book.read_source(chapter)
        tagged = [c for c in notebook.cells if book.CLAIMS_TAG in c.metadata.get("tags", [])]
        assert tagged, f"{chapter.name} has no cell tagged claims"
        assert all("remove-cell" in c.metadata["tags"] and "assert" in c.source for c in tagged), chapter.name
        knobs = book.SMOKE_PARAMETERS.get(chapter.number, {})
        assert set(knobs) <= set(book.parameter_names(notebook)), (chapter.name, knobs)


def test_run_collects_each_chapters_results_into_the_results_file_and_page(tiny_book):
    (tiny_book / "notebooks" / "02_result.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        CONFIG = "cpu-tiny"
        SCORE = 0.8

        # %%
        from ftutils import results
        results.record(task="sentiment", metric="accuracy", scores=[SCORE, SCORE + 0.02], baseline="majority",
                       baseline_score=0.6, config=CONFIG, seconds=3.0)
        '''))
    (tiny_book / "book").mkdir()
    book.run(tiny_book, "cpu-tiny", ["01", "02"], build_html=False)
    rows = json.loads((tiny_book / "book" / "results.json").read_text())
    assert [(r["chapter"], r["task"], r["score"], r["spread"], r["seeds"]) for r in rows] == [
        ("02", "sentiment", 0.81, 0.02, 2)]
    page = (tiny_book / "book" / "results.md").read_text()
    assert "| 02 | sentiment | accuracy | 0.810 | 0.020 | 2 | majority | 0.600 | yes | 3 |" in page
    book.run(tiny_book, "cpu-tiny", ["02"], {"SCORE": 0.5}, build_html=False)  # another knob: results stay
    assert json.loads((tiny_book / "book" / "results.json").read_text()) == rows
    book.run(tiny_book, "gpu", ["02"], build_html=False)  # another config: its own file, no page
    assert (tiny_book / "book" / "results-gpu.json").is_file()
    assert json.loads((tiny_book / "book" / "results.json").read_text()) == rows


# ------------------------------------------------------------------------------------------------
# Several chapters at once


def _meeting_chapter(me: str, other: str, folder: Path) -> str:
    """A chapter that says it started, then waits for ``other`` to say so: it passes only if the two run
    side by side (one after the other, the first one would wait in vain)."""
    return chapter_source(f'''\
        import os, pathlib, time
        folder = pathlib.Path({str(folder)!r})
        (folder / {me!r}).write_text("started")
        deadline = time.monotonic() + 60
        while not (folder / {other!r}).exists():
            assert time.monotonic() < deadline, "{other} never ran beside {me}"
            time.sleep(0.05)
        print("threads", os.environ.get("OMP_NUM_THREADS"))
        ''')


def test_jobs_run_chapters_side_by_side_each_with_its_share_of_the_cores(tiny_book, tmp_path_factory, monkeypatch):
    for name in book.THREAD_ENV:
        monkeypatch.delenv(name, raising=False)
    meeting = tmp_path_factory.mktemp("meeting")
    (tiny_book / "notebooks" / "02_left.py").write_text(_meeting_chapter("left", "right", meeting))
    (tiny_book / "notebooks" / "03_right.py").write_text(_meeting_chapter("right", "left", meeting))
    times = book.run(tiny_book, "cpu-tiny", ["02", "03"], build_html=False, jobs=2)
    assert set(times) == {"02_left", "03_right"}
    for name in times:
        executed = nbformat.read(tiny_book / "executed" / f"{name}.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
        assert f"threads {book.threads_per_job(2)}" in printed, printed
    table = (tiny_book / book.TIMES_FILE).read_text()
    assert "| 02_left | cpu-tiny |" in table and "chapters at a time" in table
    assert not any(key[0] == book.WHOLE_BOOK_ROW for key in book.read_times(tiny_book / book.TIMES_FILE)), \
        "a run of some chapters is not the whole book"

    (meeting / "left").unlink()
    (meeting / "right").unlink()
    (tiny_book / "notebooks" / "01_ok.py").unlink()
    book.run(tiny_book, "cpu-tiny", build_html=False, jobs=2)  # every chapter: the whole book's wall clock
    rows = book.read_times(tiny_book / book.TIMES_FILE)
    assert rows[(book.WHOLE_BOOK_ROW, "cpu-tiny")][0] > 0
    assert "Whole book on `cpu-tiny`:" in (tiny_book / book.TIMES_FILE).read_text()


def test_with_jobs_a_failing_chapter_stops_the_run_and_the_others_are_kept(tiny_book):
    (tiny_book / "notebooks" / "02_broken.py").write_text(chapter_source("raise ValueError('bad column')\n"))
    with pytest.raises(book.ChapterFailed, match=r"chapter 02_broken failed in cell 4.*bad column"):
        book.run(tiny_book, "cpu-tiny", build_html=False, jobs=2)
    assert (tiny_book / "executed" / "01_ok.ipynb").is_file(), "the chapter that ran beside it is kept"
    assert not any(key[0] == book.WHOLE_BOOK_ROW for key in book.read_times(tiny_book / book.TIMES_FILE))


def test_seeds_run_side_by_side_and_bad_jobs_fail_at_once(tiny_book, capsys):
    (tiny_book / "notebooks" / "02_claim.py").write_text(chapter_source("assert SEED != 1, 'fails for seed 1'\n")
                                                         .replace("N_ITEMS = 3", "N_ITEMS = 3\nSEED = 0"))
    failures = book.run_seeds(tiny_book, [0, 1], only=["02"], jobs=2)
    assert list(failures) == [("02_claim", 1)]
    assert (tiny_book / book.SEEDS_DIR / "seed-0" / "02_claim.ipynb").is_file()
    for bad in (0, -1, True, 1.5):
        with pytest.raises(book.BookError, match="--jobs"):
            book.run(tiny_book, jobs=bad, build_html=False)
    assert book.main(["--root", str(tiny_book), "run", "--jobs", "0"]) == 1
    assert "--jobs 0 is not allowed" in capsys.readouterr().err


def test_longest_chapters_start_first_by_their_last_times(tiny_book):
    for name in ("02_b", "03_c"):
        (tiny_book / "notebooks" / f"{name}.py").write_text(chapter_source("pass\n"))
    book.write_times(tiny_book, {("01_ok", "cpu-tiny"): (10.0, "d", "m"), ("03_c", "cpu-tiny"): (50.0, "d", "m"),
                                 ("02_b", "gpu"): (99.0, "d", "m")})
    ordered = [c.name for c in book.longest_first(tiny_book, book.chapters(tiny_book), "cpu-tiny")]
    assert ordered == ["02_b", "03_c", "01_ok"], "never timed on cpu-tiny first, then longest first"


def test_jobs_share_the_cores_out():
    assert book.threads_per_job(1) == book.cores()
    assert book.threads_per_job(book.cores() * 4) == 1
    assert book.default_jobs() == (2 if book.cores() >= 2 else 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_runner_stops_the_chapters_it_started(tiny_book, tmp_path_factory):
    import os
    import signal
    import subprocess

    pids = tmp_path_factory.mktemp("pids")
    for name in ("02_slow", "03_slower"):
        (tiny_book / "notebooks" / f"{name}.py").write_text(chapter_source(f'''\
            import os, pathlib, time
            pathlib.Path({str(pids)!r}, "{name}").write_text(str(os.getpid()))
            time.sleep(120)
            '''))
    runner = subprocess.Popen([sys.executable, "-m", "ftutils.book", "--root", str(tiny_book), "run", "--no-build",
                               "--jobs", "2", "--only", "02", "03"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(list(pids.iterdir())) < 2:
            assert time.monotonic() < deadline and runner.poll() is None, "the chapters never started"
            time.sleep(0.2)
        kernels = [int(f.read_text()) for f in pids.iterdir()]
        runner.send_signal(signal.SIGKILL)  # no clean-up code of the runner's runs
        runner.wait()

        def alive(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            return True

        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in kernels) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(alive(pid) for pid in kernels), "a chapter's kernel outlived the runner"
    finally:
        runner.kill()
