"""What the book's sources must hold for the browser test to pass: exercises referenced by label.

``sphinx-exercise`` numbers the exercises across the book, so a number typed by hand drifts as soon
as a chapter gains an exercise. Chapters and pages refer to an exercise by its label (``{ref}`` or
``{numref}``), and the Assignments page's table is generated from the exercises
(``book/_ext/exercise_list.py``). A tiny Sphinx build here checks the extension (a few seconds).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py")) + sorted((REPO / "book").glob("*.md"))
LABEL = re.compile(r"^(?:# )?:label: (ex-[\w-]+)$", re.MULTILINE)
TYPED = re.compile(r"\bexercises?\s+\d+\b", re.IGNORECASE)


def exercise_labels() -> list[str]:
    return [label for path in SOURCES for label in LABEL.findall(path.read_text())]


def test_no_source_types_an_exercise_number():
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if TYPED.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, "refer to exercises by label ({ref}`ex-...`), not by number:\n" + "\n".join(found)


def test_the_assignments_page_gives_every_exercise_a_kind():
    page = (REPO / "book" / "assignments.md").read_text()
    listed = re.search(r"```\{exercise-list\}\n(.*?)```", page, re.DOTALL)
    assert listed, "book/assignments.md has no exercise-list directive"
    kinds = [line.split(":", 1)[0].strip() for line in listed.group(1).splitlines() if line.strip()]
    labels = exercise_labels()
    assert len(labels) == len(set(labels)) and len(labels) >= 20
    assert sorted(kinds) == sorted(labels), {"without a kind": sorted(set(labels) - set(kinds)),
                                             "not an exercise": sorted(set(kinds) - set(labels))}


def sphinx_build(src: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-n", "-b", "html", str(src), str(out)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def tiny_book(tmp_path: Path) -> Path:
    pytest.importorskip("sphinx_exercise")
    pytest.importorskip("myst_parser")
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(REPO / "book" / "_ext")!r})
        extensions = ["myst_parser", "sphinx_exercise", "exercise_list", "reader_layout"]
        myst_enable_extensions = ["colon_fence", "dollarmath"]
        """))
    (src / "index.md").write_text("# Book\n\n```{toctree}\n01_first\n02_second\nassignments\n```\n")
    (src / "01_first.md").write_text(textwrap.dedent("""\
        # First chapter: with a subtitle

        :::{exercise} A titled exercise
        :label: ex-first-1

        Grade it with `checks.check_confusion_matrix(confusion)`.
        :::

        :::{exercise}
        :label: ex-first-2

        An exercise without a title with $x^2$ in it. Its first sentence is its task.
        :::
        """))
    (src / "02_second.md").write_text(textwrap.dedent("""\
        # Second chapter

        :::{exercise} Rerun something
        :label: ex-second-1

        Rerun.
        :::

        See {ref}`ex-first-1`, and exercises {numref}`%s <ex-first-2>` and {numref}`%s <ex-second-1>`.
        """))
    (src / "assignments.md").write_text(textwrap.dedent("""\
        # Assignments

        ```{exercise-list}
        ex-first-1: code
        ex-second-1: rerun (`-p X 1`)
        ```
        """))
    return src


def test_the_exercise_table_is_generated_from_the_exercises(tiny_book, tmp_path):
    built = sphinx_build(tiny_book, tmp_path / "out")
    assert built.returncode == 0, built.stdout + built.stderr
    bs4 = pytest.importorskip("bs4")
    page = bs4.BeautifulSoup((tmp_path / "out" / "assignments.html").read_text(), "html.parser")
    rows = [[cell.get_text(" ", strip=True) for cell in row.find_all(["th", "td"])]
            for row in page.find("table", class_="exercise-list").find_all("tr")]
    assert rows == [
        ["exercise", "chapter", "task", "kind", "auto-check (ftutils.checks)"],
        ["Exercise 1", "1, First chapter", "A titled exercise", "code", "check_confusion_matrix"],
        ["Exercise 2", "1, First chapter", r"An exercise without a title with \(x^2\) in it.", "", "—"],
        ["Exercise 3", "2, Second chapter", "Rerun something", "rerun ( -p X 1 )", "—"],
    ]  # chapter numbers come from the NN_ of the file names, tasks from titles or first sentences
    links = [a["href"] for a in page.find("table", class_="exercise-list").find_all("a")]
    assert "01_first.html#ex-first-1" in links and "02_second.html#ex-second-1" in links
    second = bs4.BeautifulSoup((tmp_path / "out" / "02_second.html").read_text(), "html.parser")
    text = " ".join(second.get_text(" ").split())
    assert "See Exercise 1 , and exercises 2 and 3 ." in text
    assert page.find("table", class_="exercise-list").find(class_="math")  # the task keeps its math


def test_a_label_that_is_not_an_exercise_fails_the_build(tiny_book, tmp_path):
    page = tiny_book / "assignments.md"
    page.write_text(page.read_text().replace("ex-first-1: code", "ex-first-1: code\nex-gone-9: code"))
    built = sphinx_build(tiny_book, tmp_path / "out")
    assert built.returncode != 0 and "ex-gone-9" in built.stdout + built.stderr
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
