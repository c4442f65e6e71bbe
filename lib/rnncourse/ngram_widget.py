"""Notebook 01's window explorer: how the window size k changes predictions and coverage.

One table of models (one NGram per k, trained once), two ways to look at it:
    window_explorer(...)      an ipywidgets control: a slider for k and a prompt box
    plot_window_tradeoff(...) the same numbers as a static figure, for readers
                              without a live kernel
"""

import html

import ipywidgets as widgets
import matplotlib.pyplot as plt

from . import ngram


class WindowTable:
    """NGram models for several window sizes, trained on the same sentences.

    train, val: lists of sentences (lists of words)
    k_values:   window sizes to build, e.g. range(1, 7)
    """

    def __init__(self, train, val, k_values):
        self.k_values = list(k_values)
        if not self.k_values:
            raise ValueError("k_values is empty")
        self.models = {k: ngram.NGram(k).fit(train) for k in self.k_values}
        self.scores = {k: ngram.evaluate(m, val) for k, m in self.models.items()}
        self.n_contexts = {k: len(m.counts) for k, m in self.models.items()}

    def predict(self, prompt, k, top=3):
        """(window tuple, list of (word, probability, count)) for a prompt string."""
        if k not in self.models:
            raise ValueError(f"k must be one of {self.k_values}, got {k}")
        words = prompt.lower().split()
        model = self.models[k]
        return model.context(words), model.predict(words, top=top)


def _report_html(table, prompt, k):
    window, guesses = table.predict(prompt, k)
    shown = " ".join(w for w in window if w != "<s>") or "(start of sentence)"
    lines = [f"<b>window k = {k}</b> reads: <code>{html.escape(shown)}</code><br>"]
    if guesses:
        rows = "".join(
            f"<tr><td><code>{html.escape(w)}</code></td><td>{p:.2f}</td><td>{c}</td></tr>"
            for w, p, c in guesses
        )
        lines.append("<table><tr><th>next word</th><th>P</th><th>count</th></tr>"
                     f"{rows}</table>")
    else:
        lines.append("<i>this window never occurred in training: no prediction at all</i><br>")
    score = table.scores[k]
    lines.append(
        f"held-out sentences: window seen at <b>{score['coverage']:.0%}</b> of positions, "
        f"next word right at <b>{score['accuracy']:.0%}</b>"
        f"<div style='background:#ddd;width:300px;height:10px'>"
        f"<div style='background:#3a7;width:{300 * score['coverage']:.0f}px;height:10px'>"
        "</div></div>"
    )
    return "".join(lines)


def window_explorer(table, prompts, k=2):
    """A slider for the window size and a prompt box; the report redraws on every change.

    table:   a WindowTable; prompts: suggestions for the prompt box (the first is shown)
    returns an ipywidgets.VBox (display it, or let the notebook show it as a cell's value)
    """
    slider = widgets.IntSlider(value=k, min=min(table.k_values), max=max(table.k_values),
                               description="window k")
    box = widgets.Combobox(value=prompts[0], options=list(prompts), description="prompt",
                           ensure_option=False, layout=widgets.Layout(width="420px"))
    report = widgets.HTML(_report_html(table, box.value, slider.value))

    def redraw(_change):
        report.value = _report_html(table, box.value, slider.value)

    slider.observe(redraw, names="value")
    box.observe(redraw, names="value")
    return widgets.VBox([slider, box, report])


def prediction_rows(table, prompts):
    """For the static version: one row per (prompt, k) with the window and its top guess."""
    rows = []
    for prompt in prompts:
        for k in table.k_values:
            window, guesses = table.predict(prompt, k, top=1)
            guess = f"{guesses[0][0]} ({guesses[0][1]:.2f})" if guesses else "(unseen window)"
            rows.append((prompt, k, " ".join(w for w in window if w != "<s>"), guess))
    return rows


def plot_window_tradeoff(table):
    """Coverage and accuracy against k (left) and how many distinct windows there are (right)."""
    ks = table.k_values
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(ks, [table.scores[k]["coverage"] for k in ks], "o-", label="coverage (window seen)")
    ax1.plot(ks, [table.scores[k]["accuracy"] for k in ks], "s-", label="accuracy (top guess)")
    ax1.plot(ks, [table.scores[k]["accuracy_when_seen"] for k in ks], "^--",
             label="accuracy where the window was seen")
    ax1.set(xlabel="window size k (words of context)", ylabel="fraction of held-out positions",
            title="Longer windows are seen less and less often", ylim=(0, 1.05), xticks=ks)
    ax1.legend(fontsize=8)
    ax2.bar(ks, [table.n_contexts[k] for k in ks], color="#888")
    ax2.set(xlabel="window size k (words of context)", ylabel="distinct windows in training",
            title="Each window is its own table row", xticks=ks)
    fig.tight_layout()
    return fig
