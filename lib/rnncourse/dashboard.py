"""The gradient-flow dashboard: views of a recording.GradientRecord, as a static
matplotlib figure or live with ipywidgets. They only draw what a record holds; the
recording and the alert logic are in recording.

    plot_heatmap, plot_spectrum, plot_profile, plot_reach   one panel each
    static_figure   all panels for one or more records
    alert_text      one line per record: its alert, or that there is none
    live            static_figure with a training-step slider and a threshold control
"""

import numpy as np

from .recording import check_threshold, early_fraction, find_alert, relative_norms

PALETTE = ("tab:red", "tab:orange", "tab:blue", "tab:green", "tab:purple")
# Each model also gets a line style and a marker of its own, so that no two are told apart
# by colour alone (red against orange is the classic red-green confusion).
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))
MARKERS = (".", "s", "^", "D", "v")


def plot_heatmap(record, ax, threshold=None, early=1, step=None, vmin=None, vmax=None):
    """||dL/dh_t|| as colour (log scale), time step t up, training step across.

    threshold: if given, marks the alert (white cross) and the first training step
               at which it fires (dashed line)
    step:      if given, marks that training step (solid line)
    """
    import matplotlib.colors as mcolors

    norms = np.maximum(record.grad_norms, np.finfo(float).tiny)
    steps = record.steps
    half = (steps[1] - steps[0]) / 2 if len(steps) > 1 else 0.5
    mesh = ax.imshow(norms.T, origin="lower", aspect="auto", interpolation="nearest",
                     extent=(steps[0] - half, steps[-1] + half, 0.5, record.T + 0.5),
                     norm=mcolors.LogNorm(vmin=vmin, vmax=vmax), cmap="viridis")
    ax.figure.colorbar(mesh, ax=ax, label="||dL/dh_t|| (log scale)")
    ax.set(title=f"{record.name}: gradient reaching each h_t", xlabel="training step",
           ylabel="time step t")
    if step is not None:
        ax.axvline(record.steps[record.index(step)], color="white", lw=1)
    if threshold is not None:
        alert = find_alert(record, threshold, early)
        if alert is not None:
            ax.axvline(alert.step, color="white", ls="--", lw=1)
            ax.plot([alert.step], [record.T - alert.lag], "wx", ms=9, mew=2)
    return mesh


def plot_spectrum(record, ax, step=None, colour=PALETTE[0]):
    """The recurrent spectrum on the complex plane with the unit circle.

    RNN: eigenvalues of W_h at the first recorded step (grey) and at `step`
    (coloured). LSTM: the mean forget gate of each unit: on the real axis, inside (0, 1).
    """
    s = record.index(step)
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="black", lw=0.8, label="unit circle")
    ax.axhline(0, color="grey", lw=0.4)
    ax.axvline(0, color="grey", lw=0.4)
    first, now = record.spectrum[0], record.spectrum[s]
    what = "eigenvalues of W_h" if record.kind == "rnn" else "mean forget gate per unit"
    ax.scatter(first.real, first.imag, s=14, color="grey", alpha=0.6,
               label=f"step {record.steps[0]}")
    ax.scatter(now.real, now.imag, s=14, color=colour, label=f"step {record.steps[s]}")
    ax.set_aspect("equal")
    lim = max(1.1, float(np.abs(record.spectrum).max()) * 1.05)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="real part", ylabel="imaginary part",
           title=f"{record.name}: {what}")
    ax.legend(loc="lower left", fontsize="small")


def plot_profile(records, ax, step=None, threshold=None):
    """||dL/dh_t|| / ||dL/dh_T|| against the lag T - t at one training step, log scale."""
    for j, record in enumerate(records):
        s = record.index(step)
        rel = relative_norms(record)[s]
        lags = np.arange(record.T)[::-1]
        ax.semilogy(lags, rel, color=PALETTE[j % len(PALETTE)], ls=LINESTYLES[j % 5],
                    marker=MARKERS[j % 5], ms=3, markevery=max(1, record.T // 12),
                    label=f"{record.name}, step {record.steps[s]}")
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set(title="gradient reaching h_t, as a fraction of the last step's",
           xlabel="lag T - t (steps back from the end)",
           ylabel="||dL/dh_t|| / ||dL/dh_T|| (log scale)")
    ax.legend(fontsize="small")


def plot_reach(records, ax, threshold=None, early=1, step=None):
    """The fraction reaching the earliest steps over training, log scale, with alerts."""
    for j, record in enumerate(records):
        colour = PALETTE[j % len(PALETTE)]
        ax.semilogy(record.steps, early_fraction(record, early), color=colour,
                    ls=LINESTYLES[j % 5], marker=MARKERS[j % 5], ms=3,
                    markevery=max(1, len(record.steps) // 12), label=record.name)
        if threshold is not None:
            alert = find_alert(record, threshold, early)
            if alert is not None:
                ax.plot([alert.step], [alert.ratio], "o", mfc="none", ms=10, color=colour)
    if threshold is not None:
        ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:g}")
    if step is not None:
        ax.axvline(step, color="grey", lw=1)
    first = "h_1" if early == 1 else f"max over h_1..h_{early}"
    ax.set(title=f"reach: gradient at {first} / at h_T over training", xlabel="training step",
           ylabel="fraction of the last step's (log scale)")
    ax.legend(fontsize="small")


def static_figure(records, threshold=1e-3, early=1, step=None):
    """Side by side, one column per record: heat map, spectrum; then the profile at
    `step` and the reach over training for all records together. Returns the Figure."""
    import matplotlib.pyplot as plt

    records = list(records)
    if not records:
        raise ValueError("records is empty: pass at least one GradientRecord")
    check_threshold(threshold)
    n = len(records)
    fig = plt.figure(figsize=(5.5 * max(n, 2), 13))
    grid = fig.add_gridspec(3, 2 * n, height_ratios=[1, 1.15, 1], left=0.05, right=0.97,
                            bottom=0.05, top=0.96, wspace=0.6, hspace=0.3)
    lo = min(float(np.min(r.grad_norms[r.grad_norms > 0], initial=np.inf)) for r in records)
    hi = max(float(np.max(r.grad_norms)) for r in records)
    for j, record in enumerate(records):
        plot_heatmap(record, fig.add_subplot(grid[0, 2 * j:2 * j + 2]), threshold, early, step,
                     vmin=lo, vmax=hi)
        plot_spectrum(record, fig.add_subplot(grid[1, 2 * j:2 * j + 2]), step,
                      PALETTE[j % len(PALETTE)])
    plot_profile(records, fig.add_subplot(grid[2, :n]), step, threshold)
    plot_reach(records, fig.add_subplot(grid[2, n:]), threshold, early, step)
    return fig


def alert_text(records, threshold, early=1):
    """One line per record: the alert, or that the gradient never fell that low."""
    lines = []
    for record in records:
        alert = find_alert(record, threshold, early)
        lines.append(str(alert) if alert is not None else
                     f"no alert for {record.name}: over {len(record.steps)} recorded steps "
                     f"the gradient reaching h_1 never fell below {threshold:g} of the last step's")
    return "\n".join(lines)


def live(records, threshold=1e-3, early=1):
    """The dashboard as ipywidgets: a slider over training steps, a threshold control
    and the alert text, redrawing static_figure on every change. Returns the widget."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    records = list(records)
    if not records:
        raise ValueError("records is empty: pass at least one GradientRecord")
    check_threshold(threshold)
    steps = sorted({int(s) for r in records for s in r.steps})
    step_slider = widgets.SelectionSlider(options=steps, value=steps[-1],
                                          description="training step", continuous_update=False,
                                          layout=widgets.Layout(width="60%"))
    threshold_slider = widgets.FloatLogSlider(value=threshold, base=10, min=-8, max=-0.5,
                                              step=0.25, description="threshold",
                                              continuous_update=False, readout_format=".0e")
    message = widgets.HTML()
    figure_out = widgets.Output()

    def redraw(_=None):
        message.value = "<br>".join(alert_text(records, threshold_slider.value, early)
                                    .split("\n"))
        with figure_out:
            figure_out.clear_output(wait=True)
            fig = static_figure(records, threshold_slider.value, early, step_slider.value)
            fig.set_dpi(72)  # lighter to redraw and to store in the notebook
            display(fig)
            plt.close(fig)

    step_slider.observe(redraw, names="value")
    threshold_slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([step_slider, threshold_slider]), message, figure_out])
