"""Judged checks of the copy_task assignment (rnngrading.judge): one Part per test cell.

Part 1's batches are random, so they are judged by their layout, reproducibility and
statistics, here. Part 3 runs the student's train_copy in the kernel from weights the judge
gives, with the source's copy_task_batch in place of the student's (a mistake in Part 1 is
not charged twice), and compares its losses and final weights with the source's train_copy
run the same way here; the known mistakes are the source's loop with that mistake made.
Part 4 reads the trained LSTM's weights and evaluates them here, on fresh sequences.
"""

from pathlib import Path

import numpy as np

from rnngrading.judge import Case, Expr, Mistake, Part, cell_code, close, reference_answer

NOTEBOOK = Path(__file__).with_name("copy_task.ipynb")


def _describe(value):
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__ if value is not None else "None"


# ---- Part 1: copy_task_batch (random: judged by layout, reproducibility and statistics,
# through a helper that calls it several times in the kernel)

BATCHES = Expr("def batches(N, delay, seeds, shared):\n"
               "    if shared:\n"
               "        rng = np.random.default_rng(int(seeds[0]))\n"
               "        return [copy_task_batch(N, delay, rng) for _ in seeds]\n"
               "    return [copy_task_batch(N, delay, np.random.default_rng(int(s)))\n"
               "            for s in seeds]\n", uses=["copy_task_batch"], define="batches")


def batch_cases(rng):
    def batches(N, delay, seeds, shared=False, **kw):
        return Case("_judge_batches", (N, delay, np.asarray(seeds, dtype=np.int64), shared),
                    replace={"_judge_batches": BATCHES}, **kw)

    yield batches(4, 5, [0, 0, 1], label="the visible test's N = 4, delay = 5, seeds 0, 0, 1",
                  hidden=False)
    seeds = [int(s) for s in rng.integers(0, 2**31, size=4)]
    for N, delay, seed in [(1, 1, seeds[0]), (int(rng.integers(2, 6)), int(rng.integers(6, 20)),
                                              seeds[1]),
                           (int(rng.integers(2, 4)), int(rng.integers(40, 80)), seeds[2])]:
        yield batches(N, delay, [seed])
    yield batches(4000, int(rng.integers(2, 6)), [seeds[3], seeds[3]], shared=True)


def _layout(x, y, N, delay):
    """None, or what is wrong with one batch (the visible test's hints, in its order)."""
    if x.shape != y.shape:
        return f"x and y must have the same shape, got {x.shape} and {y.shape}"
    if x.shape == (N, delay + 21):
        return ("Length delay + 21: one blank too many. The input is 10 symbols, delay - 1 "
                "blanks, the delimiter and 10 blanks: delay + 20 in all.")
    if x.shape != (N, delay + 20):
        return (f"With N = {N} and delay = {delay} the arrays must be {(N, delay + 20)}, got "
                f"{x.shape}")
    if x.dtype.kind not in "iu" or y.dtype.kind not in "iu":
        return "x and y hold token ids: use an integer dtype (e.g. np.int64)."
    if not np.all((x[:, :10] >= 1) & (x[:, :10] <= 8)):
        return ("The 10 symbols are drawn from 1 .. 8 (0 is the blank, 9 the delimiter): "
                "rng.integers(1, 9) excludes the 9.")
    if np.all(x[:, delay + 10] == 9):
        return ("Off by one: the delimiter sits at index delay + 9 (after delay - 1 blanks), "
                "not delay + 10.")
    if delay >= 2 and np.all(x[:, delay + 8] == 9):
        return "Off by one: the delimiter sits at index delay + 9, not delay + 8."
    if not np.all(x[:, delay + 9] == 9):
        return f"The delimiter 9 must sit at index delay + 9 = {delay + 9} for delay = {delay}."
    if not (np.all(x[:, 10:delay + 9] == 0) and np.all(x[:, delay + 10:] == 0)):
        return "Apart from the symbols and the delimiter, the input is blank (0)."
    if np.array_equal(y[:, delay + 9:delay + 19], x[:, :10]):
        return ("The targets start one step early: the symbols are due at indices delay + 10 .. "
                "delay + 19.")
    if not np.all(y[:, :delay + 10] == 0):
        return "The first delay + 10 targets are blanks (0)."
    if not np.array_equal(y[:, delay + 10:], x[:, :10]):
        return "The last 10 targets are the 10 input symbols, in the same order."
    return None


def batch_check(got, case, ref, rng):
    N, delay, seeds, shared = case.args
    if not isinstance(got, list) or len(got) != len(seeds):
        return f"expected one batch per call, got {_describe(got)}"
    pairs = []
    for pair in got:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return f"copy_task_batch returns the pair x, y; got {_describe(pair)}"
        x, y = pair
        if not all(isinstance(a, np.ndarray) and a.dtype.kind in "biuf" for a in (x, y)):
            return f"x and y must be arrays of integers, got {_describe(x)} and {_describe(y)}"
        why = _layout(x, y, N, delay)
        if why:
            return why
        pairs.append(x)
    if shared:  # two calls with one generator: fresh, uniform, independent symbols
        symbols = pairs[0][:, :10]
        if np.array_equal(pairs[0], pairs[1]):
            return "two calls with one rng gave the same batch: draw fresh symbols on each call"
        counts = np.bincount(symbols.ravel(), minlength=10)
        if np.any(np.abs(counts[1:9] / symbols.size - 1 / 8) >= 0.01):
            return "the symbols are not uniform on 1..8"
        if len({tuple(row) for row in symbols}) <= 0.975 * len(symbols):
            return "the sequences of a batch should be drawn independently"
        return None
    for i, j in [(a, b) for a in range(len(seeds)) for b in range(a)]:
        if seeds[i] == seeds[j] and not np.array_equal(pairs[i], pairs[j]):
            return ("The same seed gave a different batch: draw from the rng argument, not "
                    "np.random.*")
        if seeds[i] != seeds[j] and np.array_equal(pairs[i], pairs[j]):
            return "Different seeds should give different symbols."
    return None


# ---- Part 2: copy_task_baseline


def baseline_cases(rng):
    yield Case("copy_task_baseline", (100,), label="the visible test's delay = 100", hidden=False)
    for delay in (1, int(rng.integers(5, 50)), int(rng.integers(100, 1000))):
        yield Case("copy_task_baseline", (delay,))


def _baseline_mistake(formula, message):
    return Mistake(lambda case, want, ref: formula(case.args[0]), message)


BASELINE_MISTAKES = (
    _baseline_mistake(lambda d: 10 * np.log2(8) / (d + 20),
                      "That uses log base 2 (bits). The cross-entropy uses the natural log: "
                      "np.log."),
    _baseline_mistake(lambda d: 10 * np.log(10) / (d + 20),
                      "The guess is uniform over the 8 symbols, not over all 10 tokens: the blank "
                      "and the delimiter never appear among the last 10 targets."),
    _baseline_mistake(lambda d: 10 * np.log(8) / (d + 10),
                      "Average over all delay + 20 positions, not delay + 10."),
    _baseline_mistake(lambda d: np.log(8) / (d + 20),
                      "Each of the 10 symbol positions costs log 8: that is 10 log 8 in all, "
                      "before averaging."),
    _baseline_mistake(lambda d: np.log(8),
                      "log 8 is the loss at one symbol position; the baseline is the average over "
                      "all delay + 20."),
)

# ---- Part 3: train_copy, run in the kernel from the judge's weights, with the source's
# copy_task_batch; compared with the source's train_copy run the same way here

SOURCE_BATCH = Expr(cell_code(NOTEBOOK, "copy-task-batch"), define="copy_task_batch")
RETURNS = "(result, list(args[0].parameters()))"


def _n_weights(cell, H):
    gates = {"rnn": 1, "lstm": 4}[cell]
    return gates * H * (10 + H + 2) + 10 * H + 10


def _model(cell, H, rng):
    """A CopyModel with the judge's weights: uniform(+-1/sqrt(H)), the read-out scaled by 8
    so that the first gradients are larger than 1 and clipping acts."""
    weights = rng.uniform(-1, 1, size=_n_weights(cell, H)) / np.sqrt(H)
    weights[-(10 * H + 10):] *= 8.0
    return Expr(f"(lambda m: (torch.nn.utils.vector_to_parameters(torch.as_tensor(w, "
                f"dtype=torch.float32), m.parameters()), m)[1])(CopyModel({cell!r}, {H}))",
                uses=["CopyModel"], w=weights)


VISIBLE_MODEL = Expr("(lambda: (torch.manual_seed(1), (lambda m: (m.readout.weight.data.mul_(3.0), "
                     "m)[1])(CopyModel('rnn', 8)))[1])()", uses=["CopyModel"])


def train_cases(rng):
    replace = {"copy_task_batch": SOURCE_BATCH}
    yield Case("train_copy", (VISIBLE_MODEL, 3, 4, 4, 0.01, Expr("np.random.default_rng(5)")),
               returns=RETURNS, replace=replace, hidden=False,
               label="the visible test's tiny RNN (H = 8, delay 3, 4 steps, batches of 4)")
    for cell, lr in (("rnn", float(rng.choice([0.005, 0.01, 0.02]))),
                     ("lstm", float(rng.choice([0.02, 0.05]))),
                     (str(rng.choice(["rnn", "lstm"])), 0.01)):
        H = int(rng.integers(4, 11))
        args = (_model(cell, H, rng), int(rng.integers(1, 7)), int(rng.integers(4, 8)),
                int(rng.integers(2, 6)), lr,
                Expr("np.random.default_rng(int(seed))", seed=rng.integers(0, 2**31)))
        yield Case("train_copy", args, returns=RETURNS, replace=replace)


def _variant(old, new):
    """The source's train_copy with one mistake made: `old` replaced by `new`."""
    code = cell_code(NOTEBOOK, "train-copy")
    if old not in code:
        raise ValueError(f"judge.py: the source's train_copy no longer has {old!r}")
    return code.replace(old, new)


CLIP = "nn.utils.clip_grad_norm_(model.parameters(), 1.0)"
ADAM = "optimizer = torch.optim.Adam(model.parameters(), lr=lr)"
DRAW = "x, y = copy_task_batch(batch_size, delay, rng)"
WRONG_LOOPS = (
    (_variant(CLIP, "pass"),
     "The gradient's norm exceeded 1 and was not clipped: call "
     "nn.utils.clip_grad_norm_(model.parameters(), 1.0) after backward, before optimizer.step()."),
    (_variant(CLIP + "\n        optimizer.step()", "optimizer.step()\n        " + CLIP),
     "Clip before optimizer.step(): clipping afterwards changes nothing Adam applies."),
    (_variant("optimizer.zero_grad()", "pass"),
     "The gradients of the earlier steps were added in: call optimizer.zero_grad() before "
     "loss.backward()."),
    (_variant("targets.reshape(-1))", "targets.reshape(-1), reduction=\"sum\")"),
     "The loss is summed over the positions; take the mean (F.cross_entropy's default)."),
    (_variant("    " + ADAM + "\n", "").replace(DRAW, ADAM + "\n        " + DRAW),
     "A new optimizer was built during training: build torch.optim.Adam once, before the loop "
     "(Adam keeps running averages of the gradients from step to step)."),
    (_variant("lr=lr)", ")"), "Adam's learning rate must be the lr argument."),
    (_variant("    for _ in tqdm", "    " + DRAW + "\n    for _ in tqdm").replace(
        "        " + DRAW + "\n", ""),
     "Draw one fresh batch per step with copy_task_batch."),
    (_variant(CLIP, "nn.utils.clip_grad_value_(model.parameters(), 1.0)"),
     "Clip the global norm of the gradients (clip_grad_norm_), not each value."),
)
_variants = {}


def _wrong_loop(code):
    def wrong(case, want, ref):
        key = (id(ref), code)
        if key not in _variants:
            namespace = dict(ref)
            exec(code, namespace)  # noqa: S102 - the source's loop with a mistake made
            _variants[key] = namespace
        return reference_answer(case, _variants[key])

    return wrong


TRAIN_MISTAKES = tuple(Mistake(_wrong_loop(code), message) for code, message in WRONG_LOOPS)
_train_close = close(rtol=1e-4, atol=1e-5)


def train_compare(got, want):
    if not isinstance(got, tuple) or len(got) != 2:
        return f"expected the losses and the weights, got {_describe(got)}"
    losses, weights = got
    if not isinstance(losses, (list, tuple)) or len(losses) != len(want[0]):
        return f"One loss per step: expected {len(want[0])}, got {_describe(losses)}"
    if not all(np.size(v) == 1 and np.isfinite(np.asarray(v, dtype=float)).all()
               for v in losses if not isinstance(v, (str, dict, list, tuple))):
        return "The losses must be finite numbers."
    why = _train_close(list(losses), list(want[0]))
    if why:
        return f"the losses are not those of the mean loss, step by step ({why})"
    why = _train_close(weights, want[1])
    if why:
        return f"the weights after training are not those of the reference loop ({why})"
    return None


# ---- Part 4: the trained LSTM beats the memoryless baseline, judged here on fresh sequences
# drawn here. Their layout is that of the task the student's LSTM was trained on (a batch of
# the student's copy_task_batch is read for it, so a mistake in Part 1 is not charged twice)
# if that is a copy task with the stated delay, else the source's.

LAYOUT_BATCH = ("def layout_batch():\n"
                "    try:\n"
                "        return copy_task_batch(64, DELAY, np.random.default_rng(int(seed)))\n"
                "    except Exception:\n"
                "        return None\n")


def beats_cases(rng):
    batch = Expr(LAYOUT_BATCH, uses=["copy_task_batch", "DELAY"], define="layout_batch",
                 seed=rng.integers(0, 2**31))
    yield Case(name="lstm_model", args=(batch,),
               returns="([p for p in result.parameters()], args[0]())",
               label="lstm_model, on fresh sequences", hidden=False)
    yield Case(name="rnn_model", returns="([p for p in result.parameters()], None)",
               label="rnn_model, on fresh sequences", hidden=False)


def _student_layout(batch, delay):
    """(length, delimiter column, target columns) of the student's batch if it is a copy
    task that needs a memory of about `delay` steps, else None."""
    if not isinstance(batch, tuple) or len(batch) != 2:
        return None
    x, y = batch
    if not all(isinstance(a, np.ndarray) and a.dtype.kind in "iu" and a.ndim == 2
               for a in (x, y)) or x.shape != y.shape:
        return None
    L = x.shape[1]
    if not (len(x) >= 32 and delay + 19 <= L <= delay + 21):
        return None
    symbols = x[:, :10]
    if not np.all((symbols >= 1) & (symbols <= 8)) or len({tuple(r) for r in symbols}) < len(x):
        return None
    marks = np.argwhere(x[:, 10:] != 0)
    if len(marks) != len(x) or len(set(marks[:, 1])) != 1 or not np.all(x[:, 10:].sum(1) == 9):
        return None
    delimiter = 10 + int(marks[0, 1])
    targets = np.flatnonzero(np.any(y != 0, axis=0))
    if len(targets) != 10 or not np.array_equal(y[:, targets], symbols) or (
            targets[0] < max(delimiter, delay + 9)):
        return None
    return L, delimiter, targets


def _fresh(layout, N, rng):
    L, delimiter, targets = layout
    symbols = rng.integers(1, 9, size=(N, 10))
    x, y = np.zeros((N, L), dtype=np.int64), np.zeros((N, L), dtype=np.int64)
    x[:, :10], x[:, delimiter], y[:, targets] = symbols, 9, symbols
    return x, y


def beats_check(got, case, ref, rng):
    import torch

    weights, batch = got
    cell, delay = case.name[:-len("_model")], ref["DELAY"]
    model = ref["CopyModel"](cell, ref["HIDDEN"])
    params = list(model.parameters())
    if not isinstance(weights, list) or len(weights) != len(params):
        return f"{case.name} is not a CopyModel({cell!r}, HIDDEN): {_describe(weights)} of weights"
    for p, value in zip(params, weights, strict=True):
        if not isinstance(value, np.ndarray) or value.shape != tuple(p.shape) or (
                value.dtype.kind != "f"):
            return f"{case.name} is not a CopyModel({cell!r}, HIDDEN) (a weight's shape differs)"
    with torch.no_grad():
        for p, value in zip(params, weights, strict=True):
            p.copy_(torch.as_tensor(value, dtype=torch.float32))
    layout = _student_layout(batch, delay) or (delay + 20, delay + 9, np.arange(10) + delay + 10)
    loss = ref["evaluate_copy"](model, *_fresh(layout, 500, rng))
    if not np.isfinite(loss):
        return "Both models must train to a finite loss."
    baseline = 10 * np.log(8) / layout[0]
    if cell == "lstm" and not loss < 0.95 * baseline:
        return (f"The LSTM's loss on 500 fresh sequences, {loss:.4f}, should be below 0.95 x "
                f"{baseline:.4f} (the baseline). Check train_copy: one fresh batch per step, "
                "zero_grad before backward, clip, then optimizer.step(), with the optimizer "
                "built once, before the loop.")
    return None


PARTS = [
    Part("test_copy_task_batch", batch_cases, check=batch_check, result_mb=8),
    Part("test_copy_task_baseline", baseline_cases, close(rtol=1e-9, atol=0.0), BASELINE_MISTAKES),
    Part("test_train_copy", train_cases, train_compare, TRAIN_MISTAKES),
    Part("test_lstm_beats_baseline", beats_cases, check=beats_check),
]
SOURCE_CELLS = ("model", "budget")
