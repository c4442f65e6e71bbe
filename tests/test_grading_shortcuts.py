"""What the grading processes do once instead of per submission must not change an answer.

- The zygote's metadata check (nbgrader's, with its jsonschema validators built once) gives
  the error jsonschema.validate gives, for good and for tampered cell metadata.
- Only the zygote's children skip the disk sync of their throwaway gradebook: the course's
  gradebook keeps SQLite's default.
- The kernel spec's launcher reads its arguments as argparse did and imports nothing
  beyond the standard library until it needs bubblewrap.
"""

import json
import os
import sqlite3
import subprocess
import sys

import jsonschema
import pytest

from rnngrading import launcher, zygote
from rnngrading.course import REPO, own_bin_first


def nbgrader_schema():
    from nbgrader.nbgraderformat import v3

    return v3.MetadataValidatorV3().schema


GOOD = {"grade": True, "solution": False, "locked": True, "points": 2, "grade_id": "t1",
        "schema_version": 3, "task": False}
TAMPERED = [
    {**GOOD, "points": -5},
    {**GOOD, "points": "lots"},
    {**GOOD, "grade": "yes"},
    {**GOOD, "grade_id": 7},
    {k: v for k, v in GOOD.items() if k != "grade_id"},
    {**GOOD, "schema_version": "3"},
    {**GOOD, "cell_type": "markdown"},
    {**GOOD, "extra": {"nested": [1, 2]}},
    {**GOOD, "points": None, "grade": None},
    [],
    "grade",
]


def _outcome(validate, instance, schema):
    try:
        validate(instance, schema)
    except jsonschema.ValidationError as exc:
        return "error", exc.message, list(exc.path), list(exc.schema_path)
    return "ok", None, None, None


@pytest.mark.parametrize("instance", [GOOD, *TAMPERED], ids=range(1 + len(TAMPERED)))
def test_the_cached_metadata_check_gives_jsonschemas_answer(instance):
    schema = nbgrader_schema()
    cached = zygote._CachedSchemas(jsonschema)
    expected = _outcome(jsonschema.validate, instance, schema)
    assert _outcome(cached.validate, instance, schema) == expected
    # and again, now from its cache, with the schema loaded afresh as nbgrader loads it
    assert _outcome(cached.validate, instance, nbgrader_schema()) == expected
    assert len(cached._validators) == 1
    assert cached.ValidationError is jsonschema.ValidationError  # the rest is jsonschema's


def test_a_tampered_cell_fails_nbgraders_own_check_in_a_prepared_process(tmp_path):
    """In a process prepared as the zygote prepares itself, nbgrader's CheckCellMetadata
    still refuses a notebook whose test cell's metadata was tampered with."""
    code = """
import json, sys
from rnngrading import zygote
zygote._prepare_for_children()
import nbformat
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.nbgraderformat.common import ValidationError
cell = nbformat.v4.new_code_cell("assert True")
cell.metadata["nbgrader"] = json.loads(sys.argv[1])
nb = nbformat.v4.new_notebook(cells=[cell])
try:
    MetadataValidator().validate_nb(nb)
    print("accepted")
except ValidationError as exc:
    print("refused:", exc.message)
"""
    said = {}
    for name, meta in (("good", GOOD), ("bad", {**GOOD, "points": "lots"})):
        out = subprocess.run([sys.executable, "-c", code, json.dumps(meta)],
                             capture_output=True, text=True, check=True)
        said[name] = out.stdout.strip()
    assert said["good"] == "accepted"
    assert said["bad"].startswith("refused:") and "lots" in said["bad"]


def test_only_the_zygotes_children_skip_the_disk_sync(tmp_path):
    """The course's gradebook, opened in a process that imported the zygote (the instructor's
    and every Dask worker), keeps SQLite's default synchronous mode; a process prepared as
    the zygote is (its children grade into a throwaway copy) has it off."""
    code = """
import sys
from rnngrading import course, zygote
if sys.argv[2] == "prepared":
    zygote._prepare_for_children()
from nbgrader.api import Gradebook
with Gradebook("sqlite:///" + sys.argv[1]) as gb:
    print(gb.db.execute(__import__("sqlalchemy").text("PRAGMA synchronous")).scalar())
"""
    env = {**os.environ, "PATH": own_bin_first(os.environ.get("PATH", ""))}  # its alembic
    found = {}
    for how in ("imported", "prepared"):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{how}.db"), how],
                             capture_output=True, text=True, check=True, env=env)
        found[how] = int(out.stdout.strip())
    default = sqlite3.connect(":memory:").execute("PRAGMA synchronous").fetchone()[0]
    assert found == {"imported": default, "prepared": 0}
    assert default != 0


@pytest.mark.parametrize(("argv", "expected"), [
    (["--spec", "S", "-f", "C"], ("S", "C", [])),
    (["-f", "C", "--spec", "S", "--debug"], ("S", "C", ["--debug"])),
    (["--spec=S", "-f=C", "--log-level=ERROR"], ("S", "C", ["--log-level=ERROR"])),
])
def test_the_launcher_reads_its_arguments_in_any_order(argv, expected):
    assert launcher.parse(argv) == expected


@pytest.mark.parametrize(("argv", "said"), [
    (["--spec", "S"], "(-f is missing)"), (["-f", "C"], "(--spec is missing)"),
    (["--spec", "S", "-f"], "-f needs a value"), ([], "(--spec is missing)"),
])
def test_the_launcher_says_what_is_missing(argv, said):
    with pytest.raises(SystemExit) as exc:
        launcher.parse(argv)
    assert said in str(exc.value)


def test_the_launcher_imports_only_the_standard_library():
    """It runs for every submission: a package import here is paid by every kernel."""
    code = ("import sys; before = set(sys.modules); import rnngrading.launcher; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO / "lib")})
    new = [m for m in out.stdout.split() if m.split(".")[0] not in sys.stdlib_module_names]
    assert new == ["rnngrading", "rnngrading.launcher"]
