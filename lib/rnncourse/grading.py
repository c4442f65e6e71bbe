"""Grading helpers for the nbgrader assignments: what the feedback may show.

nbgrader restores every test cell from the source before autograding, hidden tests
included, and its feedback HTML shows the autograded notebook as it ran. Two
things would leak the hidden tests there: the source of the test cell, and the
traceback of a failing test, which quotes the code around the failing line.
`HideHiddenTests` removes both; nbgrader_config.py puts it in the feedback step.

Not imported by `import rnncourse`: it needs nbgrader, which only instructors use.
"""

from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests

HIDDEN_NOTE = "(this test cell also holds hidden tests: its traceback is not shown)"


def hidden_test_lines(source, begin="BEGIN HIDDEN TESTS", end="END HIDDEN TESTS"):
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
