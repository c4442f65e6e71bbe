"""Find ipywidgets sliders in a running notebook by their description, move them by
keyboard as a student would, and read what the widget around them shows.

ipywidgets 8 draws every slider (IntSlider, FloatSlider, FloatLogSlider,
SelectionSlider) as `.widget-slider`, a `.widget-label` holding the description,
and a noUiSlider handle with role="slider" and aria-valuenow/min/max.
"""

import re
import time

_NOTEBOOK = ".jp-Notebook"

# What a widget shows, minus the sliders themselves (their readout moves with them):
# the text of every other part, and each figure as an <img> src or a <canvas> picture.
_TEXT = """(root) => {
  const copy = root.cloneNode(true);
  copy.querySelectorAll('.widget-slider').forEach(s => s.remove());
  return copy.textContent.replace(/\\s+/g, ' ').trim();
}"""
_FIGURES = """(root) => [...root.querySelectorAll('img, canvas')].map(
  e => e.tagName === 'IMG' ? e.src : e.toDataURL())"""


def slider_labels(page):
    """Descriptions of the sliders in the open notebook, in page order, each once."""
    labels = page.locator(_NOTEBOOK).locator(".widget-slider > .widget-label").all_text_contents()
    return list(dict.fromkeys(label.strip() for label in labels if label.strip()))


def slider(page, label):
    """The first slider in the open notebook whose description is exactly `label`."""
    return page.locator(_NOTEBOOK).locator(_described(page, label)).first


def _described(page, label):
    # a relative locator (no .jp-Notebook in it), usable inside a cell too
    whole_label = re.compile(rf"^\s*{re.escape(label)}\s*$")
    return page.locator(".widget-slider").filter(
        has=page.locator(".widget-label").filter(has_text=whole_label))


def move_slider(page, label, to):
    """Move the slider labelled `label` one step ("left", "right") or to an end ("min",
    "max") with the keyboard. Returns its (min, max) from the handle's aria values."""
    handle = slider(page, label).locator("[role=slider]").first
    handle.focus()
    handle.press({"left": "ArrowLeft", "right": "ArrowRight", "min": "Home", "max": "End"}[to])
    return (round(float(handle.get_attribute("aria-valuemin"))),
            round(float(handle.get_attribute("aria-valuemax"))))


class View:
    """The output of the cell that shows slider `label`: its controls, text and figures."""

    def __init__(self, page, label):
        self.page, self.label = page, label
        cell = page.locator(_NOTEBOOK).locator(".jp-CodeCell").filter(
            has=_described(page, label)).first
        self.root = cell.locator(".jp-Cell-outputArea").first
        self.report = self.root.locator(".widget-html").first

    def text(self):
        return self.root.evaluate(_TEXT)

    def figures(self):
        return self.root.evaluate(_FIGURES)

    def signature(self):
        return self.text(), self.figures()

    def at_max(self):
        handle = slider(self.page, self.label).locator("[role=slider]").first
        return float(handle.get_attribute("aria-valuenow")) >= float(
            handle.get_attribute("aria-valuemax"))

    def changed_from(self, before, timeout_ms, what=None):
        """Wait up to timeout_ms for `what()` (default: the signature) to differ from before."""
        what = what or self.signature
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            if what() != before:
                return True
            self.page.wait_for_timeout(200)
        return False


def view_of_slider(page, label):
    return View(page, label)
