"""Lecture 03's per-letter connectivity view: which earlier letters one prediction uses.

Two ways to look at the same numbers (rnncourse.connectivity.name_connectivity):
    plot_name_connectivity(...)  a static figure: one row per model, the letters of the
                                 name coloured by their connectivity to the prediction
    explorer(...)                an ipywidgets control: pick a name and how many of its
                                 letters have been read; the figure redraws
"""

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from .connectivity import name_connectivity

CMAP = "viridis"
DYNAMIC_RANGE = 1e3  # the colour scale spans this factor below the largest value shown


def colour_scale(infos):
    """A log colour scale shared by all rows, so colours compare across models."""
    values = np.concatenate([info["conn"] for info in infos.values()])
    top = values.max() if values.size and values.max() > 0 else 1.0
    positive = values[values > 0]
    bottom = max(positive.min() if positive.size else top, top / DYNAMIC_RANGE)
    return LogNorm(vmin=min(bottom, top / 10), vmax=top)


def _draw_row(ax, row, name, info, norm, cmap):
    """One model's row: read characters coloured, the predicted one boxed, the rest grey."""
    text = "." + name + "."
    read = len(info["read"])
    for i, char in enumerate(text):
        if i < read:
            colour = cmap(norm(max(info["conn"][i], norm.vmin)))
            ax.add_patch(Rectangle((i - 0.45, row - 0.4), 0.9, 0.8, facecolor=colour,
                                   edgecolor="white"))
            dark = np.dot(colour[:3], [0.299, 0.587, 0.114]) < 0.5
            ax.text(i, row, char, ha="center", va="center", fontsize=13, weight="bold",
                    color="white" if dark else "black")
        elif i == read:
            ax.add_patch(Rectangle((i - 0.45, row - 0.4), 0.9, 0.8, facecolor="white",
                                   edgecolor="C3", lw=2, ls="--"))
            ax.text(i, row, char, ha="center", va="center", fontsize=13, color="C3")
        else:
            ax.text(i, row, char, ha="center", va="center", fontsize=13, color="0.7")
    ax.text(len(text) - 0.3, row,
            f"P('{info['target']}') = {info['p_target']:.2f}\ntop guess '{info['top']}'",
            va="center", fontsize=9)


def plot_name_connectivity(models, vocab, name, position, ax=None):
    """The letters of `name`, one row per model, coloured by connectivity to one prediction.

    models:   dict label -> a connectivity.CharModel (e.g. {"RNN": ..., "LSTM": ...})
    vocab:    the data.Vocab the models were trained with
    name:     the name to read; position: how many of its letters have been read
              (0 .. len(name)); the predicted character is name[position] or the end "."
    returns (fig, infos): infos maps each label to its name_connectivity dict
    """
    infos = {label: name_connectivity(model, vocab, name, position)
             for label, model in models.items()}
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 0.55 * (len(name) + 2) + 1.8, 0.6 + 0.7 * len(models)))
    fig = ax.figure
    norm, cmap = colour_scale(infos), matplotlib.colormaps[CMAP]
    for row, info in enumerate(infos.values()):
        _draw_row(ax, row, name, info, norm, cmap)
    ax.set_xlim(-0.6, len(name) + 3.6)
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_yticks(range(len(models)), list(models))
    ax.set_xticks([])
    ax.set_xlabel(f"'{name}': characters read (coloured), the one predicted (dashed box)")
    ax.set_ylabel("model")
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"Which letters the prediction after '{infos[next(iter(infos))]['read']}' "
                 "depends on", fontsize=11)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
    bar.set_label(r"connectivity $\|\partial \log p_t / \partial x_s\|$", fontsize=9)
    return fig, infos


def explorer(models, vocab, names, name=None, position=None):
    """Pick a name and how many of its letters have been read; the figure redraws.

    models, vocab: as for plot_name_connectivity
    names:         the names offered in the menu; name: the first one shown
                   (default names[0]); position: letters read at first (default half)
    returns an ipywidgets.VBox (display it, or leave it as a cell's last expression)
    """
    name = names[0] if name is None else name
    menu = widgets.Dropdown(options=list(names), value=name, description="name")
    slider = widgets.IntSlider(value=len(name) // 2 if position is None else position,
                               min=0, max=len(name), description="letters read")
    out = widgets.Output()

    def redraw(_change=None):
        with out:
            out.clear_output(wait=True)
            fig, _ = plot_name_connectivity(models, vocab, menu.value, slider.value)
            plt.show()
            plt.close(fig)

    def new_name(change):
        # the slider's range follows the name; setting max may clamp value (one redraw)
        before = slider.value
        slider.max = len(change["new"])
        if slider.value == before:
            redraw()

    menu.observe(new_name, names="value")
    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([menu, slider]), out])
