"""The report: RESULTS.md rendered from a run's results by the Jinja2 template RESULTS.md.j2.

This module passes data and number formats only; every sentence is in the template.
"""

import re
import statistics
from pathlib import Path

import jinja2

from .bptt import KEY as BPTT_KEY
from .copy_task import EVAL_EVERY as COPY_EVAL_EVERY
from .stats import (
    BEFORE_JUDGE_PARALLEL_S,
    TARGETS,
    fmt_num,
    fmt_stats,
    ratio_stats,
    summarize,
    verdict,
)

TEMPLATE = "RESULTS.md.j2"
SECTIONS = ("notebooks", "autograde", "imports", "autograde_profile", "parallel", "bptt",
            "bptt_timing", "bptt_profile", "copy", "class_scale")  # a partial run may leave out


def _median(seconds):
    """The median of a list of timings, or of timings already summarised."""
    return seconds["median"] if isinstance(seconds, dict) else statistics.median(seconds)


def _milliseconds(seconds):
    """Timings in seconds (a list, or a summary) as a summary in milliseconds."""
    if isinstance(seconds, dict):
        return {**seconds, **{k: seconds[k] * 1e3 for k in ("median", "min", "max")}}
    return summarize([s * 1e3 for s in seconds])


def _environment():
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
        extensions=["jinja2.ext.do"], autoescape=False)  # Markdown, not HTML
    env.filters.update(stats=fmt_stats, num=fmt_num, verdict=verdict, g="{:g}".format,
                       median=_median, ms=_milliseconds)
    env.globals.update(ratio_stats=ratio_stats, summarize=summarize, targets=TARGETS,
                       before_judge=BEFORE_JUDGE_PARALLEL_S,
                       bptt_key=list(BPTT_KEY), copy_eval_every=COPY_EVAL_EVERY)
    return env


def render(results):
    """The results file, Markdown, from a run's results (as results.json holds them)."""
    context = {**dict.fromkeys(SECTIONS), "load_sections": {}, "notes": [], **results}
    text = _environment().get_template(TEMPLATE).render(**context)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")
