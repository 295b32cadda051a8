"""Sphinx extension: the table of every exercise in the book, generated from the exercises themselves.

``sphinx-exercise`` numbers the exercises across the book ("Exercise 12"). A page that typed those
numbers by hand would drift whenever a chapter gains or loses an exercise, so the Assignments page
writes

````markdown
```{exercise-list}
ex-core-1: rerun (`-p PROJECTION tsne`), interpret
ex-code-1: code
```
````

and gets one row per exercise, in book order: its number (a link to it), its chapter (a link), its
task (the exercise's title, or else its first sentence), the *kind* the directive's body gives for its
label (optional), and the auto-checks (``ftutils.checks.check_*``) its text names. A label in the body
that is not an exercise of the book is a build warning (the book builds with ``-W``). Anywhere else,
refer to an exercise by its label: ``{ref}`ex-core-1``` renders as "Exercise 3" and links to it.
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
CHECK = re.compile(r"\bcheck_[a-z0-9_]+")
CHAPTER = re.compile(r"(?:^|/)(\d\d)_[^/]+$")


class exercise_list(nodes.General, nodes.Element):  # noqa: N801 - docutils node names are lower case
    """Placeholder that becomes the table once every exercise of the book has its number."""


class ExerciseList(SphinxDirective):
    has_content = True

    def run(self) -> list[nodes.Node]:
        node = exercise_list()
        node["docname"] = self.env.docname
        node.line = self.lineno
        for offset, line in enumerate(self.content):
            if not line.strip():
                continue
            label, sep, kind = line.partition(":")
            if not sep or not label.strip():
                raise self.error(f"exercise-list line {offset + 1} is {line!r}: expected 'label: kind of exercise'.")
            parsed, messages = self.state.inline_text(kind.strip(), self.lineno + offset)
            entry = nodes.inline("", "", *parsed)
            entry["label"] = label.strip()
            node += entry
            node += messages
        self.env.exercise_list_docs = getattr(self.env, "exercise_list_docs", set()) | {self.env.docname}
        return [node]


SENTENCE_END = re.compile(r"(?<=[.?!])\s")


def _first_sentence(paragraph: nodes.Element, limit: int = 110) -> list[nodes.Node]:
    """The first sentence of ``paragraph`` as inline nodes: text, code and math kept as they are, a
    cross reference or citation left out (it would not be resolved in this copy; the exercise itself
    shows it), at most ``limit`` characters."""
    found: list[nodes.Node] = []
    length = 0
    for child in paragraph.children:
        if isinstance(child, nodes.Text):
            text = str(child).replace("\n", " ")
            end = SENTENCE_END.search(text)
            if end:
                found.append(nodes.Text(text[:end.start()]))
                return found
            found.append(nodes.Text(text))
            length += len(text)
        elif isinstance(child, (nodes.math, nodes.literal)):
            found.append(child.deepcopy())
            length += len(child.astext())
        elif child.__class__.__name__ in ("pending_xref", "citation_reference") or "cite" in str(child.get("reftype", "")):
            continue  # a citation inside the task: the exercise itself shows it
        else:
            found.append(nodes.Text(child.astext()))
            length += len(child.astext())
        if length > limit:
            found.append(nodes.Text(" …"))
            return found
    return found


def _task(entry_node: nodes.Element) -> list[nodes.Node]:
    """The exercise's own title (``:::{exercise} Title``) or, if it has none, its first sentence."""
    title = entry_node.children[0] if entry_node.children else None
    subtitle = [c for c in (title.children if title is not None else []) if c.__class__.__name__ == "exercise_subtitle"]
    if subtitle:
        return [child.deepcopy() for child in subtitle[0].children]
    body = next((c for c in entry_node.children[1:] if isinstance(c, nodes.section)), None)
    paragraph = next(iter(body.findall(nodes.paragraph)), None) if body is not None else None
    return _first_sentence(paragraph) if paragraph is not None else [nodes.Text("")]


def _chapter_name(env: Any, docname: str) -> str:
    title = env.titles[docname].astext() if docname in env.titles else docname
    short = title.split(":")[0].split(",")[0].strip()
    match = CHAPTER.search(docname)
    return f"{int(match.group(1))}, {short}" if match else short


def _exercises(env: Any) -> list[tuple[tuple[int, ...], str, dict]]:
    registry = getattr(env, "sphinx_exercise_registry", {})
    found = []
    for label, entry in registry.items():
        node = entry.get("node")
        if entry.get("type") not in ("exercise", "exercise-start") or node is None:
            continue
        number = env.toc_fignumbers.get(entry["docname"], {}).get("exercise", {}).get(label)
        if number:
            found.append((tuple(number), label, entry))
    return sorted(found, key=lambda item: item[0])


def _row(*cells: list[nodes.Node]) -> nodes.row:
    row = nodes.row()
    for content in cells:
        entry = nodes.entry()
        entry += nodes.paragraph("", "", *content)
        row += entry
    return row


def _table(app: Any, fromdocname: str, placeholder: exercise_list) -> nodes.table:
    env = app.env
    kinds = {child["label"]: child for child in placeholder.children if isinstance(child, nodes.inline)}
    exercises = _exercises(env)
    known = {label for _, label, _ in exercises}
    for label in sorted(set(kinds) - known):
        logger.warning(f"exercise-list names {label!r}, which is not the label of a numbered exercise in the book",
                       location=(fromdocname, placeholder.line))
    headers = ("exercise", "chapter", "task", "kind", "auto-check (ftutils.checks)")
    table = nodes.table(classes=["exercise-list"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in (10, 16, 38, 18, 18):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row(*[[nodes.Text(h)] for h in headers])
    group += head
    body = nodes.tbody()
    for number, label, entry in exercises:
        docname = entry["docname"]
        uri = app.builder.get_relative_uri(fromdocname, docname)
        number_text = ".".join(map(str, number))
        link = nodes.reference("", "", nodes.Text(f"Exercise {number_text}"), internal=True, refuri=f"{uri}#{label}",
                               classes=["exercise-ref"])
        chapter = nodes.reference("", "", nodes.Text(_chapter_name(env, docname)), internal=True, refuri=uri)
        checks = list(dict.fromkeys(CHECK.findall(entry["node"].astext())))
        check_nodes: list[nodes.Node] = []
        for i, name in enumerate(checks):
            check_nodes += ([nodes.Text(", ")] if i else []) + [nodes.literal("", name)]
        kind = [c.deepcopy() for c in kinds[label].children] if label in kinds else [nodes.Text("")]
        body += _row([link], [chapter], _task(entry["node"]), kind, check_nodes or [nodes.Text("—")])
    group += body
    return table


def _resolve(app: Any, doctree: nodes.document, fromdocname: str) -> None:
    for placeholder in list(doctree.findall(exercise_list)):
        table = _table(app, fromdocname, placeholder)
        placeholder.replace_self(table)
        if any(True for _ in table.findall(nodes.math)):
            # Sphinx loads MathJax only on pages that had math when they were read; this table was not
            # there yet, so its formulas would stay raw TeX without this.
            app.env.get_domain("math").data.setdefault("has_equations", {})[fromdocname] = True


def _purge(app: Any, env: Any, docname: str) -> None:
    getattr(env, "exercise_list_docs", set()).discard(docname)


def _merge(app: Any, env: Any, docnames: Any, other: Any) -> None:
    env.exercise_list_docs = getattr(env, "exercise_list_docs", set()) | getattr(other, "exercise_list_docs", set())


def _outdated(app: Any, env: Any, added: set, changed: set, removed: set) -> list[str]:
    # The table reads every chapter: rebuild its page whenever any page changes.
    return sorted(getattr(env, "exercise_list_docs", set())) if added or changed or removed else []


def setup(app: Any) -> dict:
    app.add_node(exercise_list)
    app.add_directive("exercise-list", ExerciseList)
    app.connect("doctree-resolved", _resolve)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("env-get-outdated", _outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
