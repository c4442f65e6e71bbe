"""Pictures of the recurrence drawn with matplotlib (notebook 02)."""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch


def _box(ax, x, y, text, color):
    ax.add_patch(FancyBboxPatch((x - 0.32, y - 0.22), 0.64, 0.44,
                                boxstyle="round,pad=0.02", fc=color, ec="black", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=11)


def _arrow(ax, start, end, label=None, offset=(0.0, 0.0), **kw):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.2, **kw))
    if label:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, label, ha="center", va="center", fontsize=9, color="#333")


def draw_unrolled(inputs, outputs=None, ax=None):
    """The same cell unrolled over len(inputs) steps: x_t below, h_t in the middle, y_t above.

    inputs:  labels of the inputs, e.g. ["c", "a", "t"]
    outputs: labels of the outputs (same length), or None for generic y_t
    returns the matplotlib Axes (time on the x axis, the layer on the y axis)
    """
    T = len(inputs)
    outputs = [f"$y_{t}$" for t in range(1, T + 1)] if outputs is None else list(outputs)
    if len(outputs) != T:
        raise ValueError(f"outputs has {len(outputs)} labels, expected {T} (one per input)")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.7 * T + 1.5, 3.4))
    _box(ax, 0, 1, "$h_0$", "#eeeeee")
    for t in range(1, T + 1):
        _box(ax, t, 0, f"$x_{t}$\n{inputs[t - 1]}", "#dde8f7")
        _box(ax, t, 1, f"$h_{t}$", "#f7e3c6")
        _box(ax, t, 2, f"{outputs[t - 1]}", "#d9f0d9")
        _arrow(ax, (t, 0.22), (t, 0.78), "$W_x$", offset=(0.2, 0))
        _arrow(ax, (t, 1.22), (t, 1.78), "$W_y$", offset=(0.2, 0))
        _arrow(ax, (t - 0.68, 1), (t - 0.32, 1), "$W_h$", offset=(0, 0.15))
    ax.set(xlim=(-0.6, T + 0.6), ylim=(-0.45, 2.45), xticks=range(T + 1),
           yticks=[0, 1, 2], yticklabels=["input", "hidden state", "output"],
           xlabel="time step t", ylabel="layer",
           title=f"One cell, unrolled over {T} steps: the same $W_x$, $W_h$, $W_y$ at every step")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax
