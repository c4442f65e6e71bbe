"""Item 5: training time until the copy task's LSTM beats the memoryless baseline, with the
assignment's own code, delay, model size and budget."""

import sys
import time

from rnngrading.course import REPO

EVAL_EVERY = 50  # steps between held-out checks while racing the baseline
CELLS = ["setup", "copy_task_batch", "copy_task_baseline", "model", "train_copy", "budget"]


def copy_task_namespace():
    """The copy_task assignment's own code (source notebook, reference solution), run once."""
    import nbformat

    nb = nbformat.read(REPO / "source" / "copy_task" / "copy_task.ipynb", as_version=4)
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    namespace = {"__name__": "copy_task_assignment"}
    for gid in CELLS:
        exec(compile(cells[gid], f"copy_task.ipynb:{gid}", "exec"), namespace)  # noqa: S102
    return namespace


def race_baseline(seed_weights, seed_data, every=EVAL_EVERY):
    """Train the assignment's LSTM under its budget until it beats the baseline.

    The assignment's train_copy runs unchanged; its progress bar (tqdm) is replaced by a
    wrapper that, every `every` steps, stops the clock and scores the model on the
    assignment's 1000 held-out sequences. "Beats" is the assignment's test: held-out
    loss below 0.95 times the memoryless baseline.
    returns {"steps": steps to beat or None, "seconds": training time to beat (or for the
    whole budget), "held_out": last held-out loss, "budget": the step budget, ...}
    """
    import numpy as np
    import torch

    ns = copy_task_namespace()
    limit = 0.95 * ns["baseline"]
    torch.manual_seed(seed_weights)
    model = ns["CopyModel"]("lstm", ns["HIDDEN"])
    state = {"train": 0.0, "since": None, "steps": None, "held_out": None}

    def racing_tqdm(iterable, disable=True):
        state["since"] = time.perf_counter()
        for step in iterable:
            if step and step % every == 0:
                state["train"] += time.perf_counter() - state["since"]
                state["held_out"] = ns["evaluate_copy"](model, ns["x_eval"], ns["y_eval"])
                if state["held_out"] < limit:
                    state["steps"] = step
                    return
                state["since"] = time.perf_counter()
            yield step
        state["train"] += time.perf_counter() - state["since"]
        state["held_out"] = ns["evaluate_copy"](model, ns["x_eval"], ns["y_eval"])
        if state["held_out"] < limit:
            state["steps"] = ns["STEPS"]

    ns["tqdm"] = racing_tqdm
    ns["train_copy"](model, ns["DELAY"], ns["STEPS"], ns["BATCH"], ns["LEARNING_RATE"]["lstm"],
                     np.random.default_rng(seed_data))
    return {"steps": state["steps"], "seconds": state["train"], "held_out": state["held_out"],
            "limit": limit, "baseline": ns["baseline"], "budget": ns["STEPS"],
            "delay": ns["DELAY"], "hidden": ns["HIDDEN"], "batch": ns["BATCH"],
            "lr": ns["LEARNING_RATE"]["lstm"], "seeds": [seed_weights, seed_data]}


def copy_worker(runs):
    """Run 1: the assignment's seeds (weights 0, batches 1); then seed s for both."""
    seeds = [(0, 1)] + [(s, s) for s in range(1, runs)]
    out = []
    for i, (w, d) in enumerate(seeds):
        r = race_baseline(w, d)
        beat = f"beat it after {r['steps']} steps" if r["steps"] else "did not beat it"
        print(f"[bench] copy task run {i + 1}/{runs} (seeds {w}, {d}): LSTM {beat}, "
              f"{r['seconds']:.1f} s of training, held-out {r['held_out']:.4f} "
              f"(limit {r['limit']:.5f})", file=sys.stderr, flush=True)
        out.append(r)
    return out
