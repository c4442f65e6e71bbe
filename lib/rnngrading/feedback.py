"""What feedback may show: no hidden test, neither its source nor a traceback quoting it.

nbgrader restores every test cell from the source before autograding, hidden tests
included, and its feedback HTML shows the autograded notebook as it ran. Two things would
leak the hidden tests there: the source of the test cell, and the traceback of a failing
test, which quotes the code around the failing line. `HideHiddenTests` removes both;
nbgrader_config.py puts it in the feedback step, and `check_feedback` reads every page
made to be sure.

Feedback pages also read offline: nbgrader_config.py puts templates/feedback beside this
module before nbgrader's own feedback template, and its MathJax macro is the script that
`inline_mathjax` puts inside the page, taken from the sphinx-mathjax-offline package.
"""

import functools
import html
import re
from html.parser import HTMLParser
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests

from .course import CourseError

HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
HIDDEN_NOTE = "(this test cell also holds hidden tests: its traceback is not shown)"
MATHJAX_PACKAGE = "sphinx-mathjax-offline"  # MathJax 3.2.2's built files, from PyPI

def hidden_test_lines(source, begin=HIDDEN_BEGIN, end=HIDDEN_END):
    """The lines of a cell's source that lie inside hidden test regions, markers excluded.

    source: the cell's source text
    returns a list of strings, in order
    """
    inside, hidden = False, []
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            hidden.append(line)
    return hidden


class HideHiddenTests(ClearHiddenTests):
    """Feedback preprocessor: cut hidden test regions and their tracebacks.

    For a grade cell with a hidden test region, the region leaves the source, and
    each error output keeps its name and message only (the assertion message a
    test chose to show), followed by a note. Other cells pass through unchanged.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or not utils.is_grade(cell):
            return cell, resources
        if not self._remove_hidden_test_region(cell):
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                output["traceback"] = [message, HIDDEN_NOTE]
        return cell, resources


@functools.cache
def inline_mathjax(name):
    """The text of one of MathJax's built files, ready to sit inside a <script> element.

    name: a file of MathJax's es5 build, e.g. "tex-svg-full.js" (every TeX extension
    bundled, so nothing is fetched on demand; SVG output, so no font files)
    A Jinja filter (nbgrader_config.py registers it for the feedback template).
    Raises CourseError, naming the package to install, when the file is not there.
    """
    try:
        static = distribution(MATHJAX_PACKAGE).locate_file(f"{MATHJAX_PACKAGE}/static")
    except PackageNotFoundError:
        raise CourseError(
            f"feedback pages need MathJax from the {MATHJAX_PACKAGE} package, not installed: "
            f"run .venv/bin/pip install {MATHJAX_PACKAGE}==0.0.2 (or make setup)") from None
    path = Path(str(static)) / "mathjax" / name
    if not path.is_file():
        raise CourseError(f"no {name} in {path.parent}: reinstall {MATHJAX_PACKAGE}==0.0.2")
    # "</script" would end the element early; MathJax's build has none, and this keeps it so.
    return re.sub(r"</(script)", r"<\\/\1", path.read_text(encoding="utf-8"), flags=re.I)


class _Text(HTMLParser):
    """The visible text of an HTML page (tags dropped, entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def html_text(page):
    """Visible text of an HTML page with runs of whitespace collapsed to one space."""
    parser = _Text()
    parser.feed(page)
    return " ".join(html.unescape("".join(parser.parts)).split())


def hidden_test_snippets(root, assignment):
    """Telltales of the hidden tests of an assignment, as they would read in a page of text.

    Each is two consecutive lines of a hidden test region, whitespace collapsed: one line
    alone ("import torch") may also be in a student's answer, two in a row hardly.
    """
    snippets = set()
    for path in (Path(root) / "source" / assignment).glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            lines = [" ".join(line.split()) for line in hidden_test_lines(cell.source)]
            lines = [line for line in lines if line]
            snippets.update(f"{a} {b}" for a, b in zip(lines, lines[1:], strict=False))
    return snippets


def check_feedback(root, assignment):
    """Raise CourseError if any feedback page of `assignment` shows a hidden test.

    returns the number of pages checked
    """
    snippets = hidden_test_snippets(root, assignment)
    pages = sorted((Path(root) / "feedback").glob(f"*/{assignment}/*.html"))
    for page in pages:
        text = html_text(page.read_text(encoding="utf-8"))
        leaked = [s for s in snippets if s in text]
        if leaked or HIDDEN_BEGIN in text:
            shown = leaked[0] if leaked else HIDDEN_BEGIN
            raise CourseError(f"{page.relative_to(Path(root))} shows a hidden test: {shown!r}")
    return len(pages)
