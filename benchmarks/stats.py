"""Numbers of a benchmark: medians with their range, ratios run by run, and the targets."""

import statistics

TARGETS = {
    "notebook_wall_s": 90.0,  # each notebook, top to bottom
    "slowest_cell_s": 30.0,  # its slowest cell
    "autograde_ratio": 1.5,  # autograde wall / plain nbclient wall, at most
    "parallel_speedup": 1.6,  # sequential / parallel, at least, on 2 cores
    "bptt_ratio": 3.0,  # NumPy / torch autograd at the key shape, at most
    "judged_vs_before": 1.15,  # sandboxed + judged, 20 jacobian on 2 workers / before the judge
    "class_per_minute": 60.0,  # jacobian submissions a minute on 2 workers (honest), at least
    "class_same_scores": True,  # the same scores with 1 worker and with 2, every assignment
}
# The sandboxed grader's wall for 20 jacobian submissions on 2 workers before the judge
# (issue 18) took the scores out of the student's kernel: RESULTS.md of commit 63f5a12.
BEFORE_JUDGE_PARALLEL_S = 41.3


def summarize(values):
    """{"median", "min", "max", "n", "values"} of a list of numbers (None if empty)."""
    values = [float(v) for v in values]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": values}


def percentile(values, q):
    """The q-th percentile (0-100) of a list of numbers, interpolated linearly between the
    two nearest ranks (NumPy's default); None if empty."""
    values = sorted(float(v) for v in values)
    if not values:
        return None
    rank = (len(values) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


def ratio_stats(numerators, denominators):
    """A ratio taken run by run (the two sides of run i were measured back to back),
    summarised like any value: median, min, max of the per-run ratios."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} runs against {len(denominators)}: not paired")
    return summarize([a / b for a, b in zip(numerators, denominators, strict=True)])


def fmt_num(value):
    """A number with 3 significant figures, no exponent for everyday sizes."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def fmt_stats(stats, unit=""):
    """'12.3 s (11.9-12.8, n=3)': the median, then min-max and the number of runs."""
    if stats is None:
        return "n/a"
    unit = f" {unit}" if unit else ""
    median = fmt_num(stats["median"])
    if stats["n"] == 1:
        return f"{median}{unit} (n=1)"
    return f"{median}{unit} ({fmt_num(stats['min'])}-{fmt_num(stats['max'])}, n={stats['n']})"


def verdict(value, limit, at_least=False):
    """PASS or MISS of a measured value against its target (at most, or at least, limit)."""
    if value is None:
        return "MISS"
    ok = value >= limit if at_least else value <= limit
    return "PASS" if ok else "MISS"
