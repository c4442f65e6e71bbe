"""The pinned environment, as `make setup` leaves it."""

import subprocess
import sys


def test_jupyter_processes_do_not_build_the_rfc3987_parsers():
    # jsonschema imports rfc3987_syntax whenever it is installed, and every nbformat,
    # nbgrader and Jupyter process pays 1.4 s for it; make setup uninstalls it.
    code = "import sys, nbgrader.apps; print('rfc3987_syntax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_notebook_validation_still_checks_formats_without_it():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.validate(nb)
    nb.cells[0]["execution_count"] = "one"
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError:
        return
    raise AssertionError("a string execution_count passed validation")
