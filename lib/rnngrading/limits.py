"""The grading limits: their one home is the course's grading_limits.toml."""

import dataclasses
import tomllib
from pathlib import Path

from .course import LIMITS_FILE, GradingSetupError, default_course


@dataclasses.dataclass(frozen=True)
class Limits:
    """The grading limits of one batch; grading_limits.toml says what each one means."""

    cell_timeout: int
    notebook_wall: int
    judge_timeout: int
    memory_mb: int
    cpu_seconds: int
    max_output_lines: int
    max_file_mb: int
    max_processes: int
    kernel_threads: int
    network: bool
    max_output_bytes_cell: int
    max_output_bytes_notebook: int
    max_submission_mb: int


def limits_file(course=None):
    return Path(course or default_course()) / LIMITS_FILE


def load_limits(path=None, **overrides):
    """Limits from the [limits] table of `path` (default: the course's grading_limits.toml),
    then `overrides`. GradingSetupError, one line, when the file is missing or incomplete."""
    path = Path(path) if path else limits_file()
    try:
        values = tomllib.loads(path.read_text())["limits"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise GradingSetupError(f"cannot read the grading limits from {path} ({exc}): it needs "
                                "a [limits] table like the course's grading_limits.toml") from None
    values = {**values, **overrides}
    fields = {f.name for f in dataclasses.fields(Limits)}
    unknown, missing = set(values) - fields, fields - set(values)
    if unknown or missing:
        what = (f"unknown limits {', '.join(sorted(unknown))}" if unknown
                else f"missing limits {', '.join(sorted(missing))}")
        raise GradingSetupError(f"{path}: {what}; the fields are {', '.join(sorted(fields))}")
    return Limits(**values)
