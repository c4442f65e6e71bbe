"""Saved ipywidgets outputs become notes on the static site.

A widget needs a live kernel, which a web page does not have. myst-nb writes each
widget output as an empty script tag (application/vnd.jupyter.widget-view+json); this
extension replaces it, right after the page is parsed, with what a reader can use:

- a tqdm progress bar (an HBox holding a FloatProgress) becomes its last line of text,
  read from the notebook's saved widget state ("NumPy RNN: 100% 400/400 [...]");
- any other widget becomes a note saying that it is live in JupyterLab, and that the
  static figure beside it in the notebook shows the same.

The saved state itself is left out of the page: nothing there reads it.
A widget whose state was not saved with the notebook is no error: a progress bar is then
recognised by its text/plain fallback, and anything else gets the note.
"""

import html
import json
import re
from pathlib import Path

from docutils import nodes

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
_TQDM = re.compile(r"\d+/\d+ \[")
_SCRIPT = re.compile(r'^<script type="' + re.escape(VIEW) + r'">(.*)</script>$', re.S)

LIVE_TITLE = "Live in JupyterLab"
LIVE_TEXT = (
    "Here the notebook shows an interactive widget, which needs a running Python kernel. "
    "The static figure beside it shows the same picture; open the notebook with one of the "
    "launch buttons at the top of this page to use the controls."
)


def read_widgets(path):
    """From a notebook: the saved widget state (model id -> {"model_name", "state"}), and
    the text/plain fallback of each widget output (model id -> text)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}
    state = nb.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {}) or {}
    plain = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if isinstance(data.get(VIEW), dict):
                text = data.get("text/plain", "")
                text = "".join(text) if isinstance(text, list) else text
                plain[data[VIEW].get("model_id")] = text
    return state, plain


def progress_text(model, state):
    """The text a tqdm bar last showed, or None if `model` is not a progress bar."""
    children = [state.get(str(ref).removeprefix("IPY_MODEL_"), {})
                for ref in model.get("state", {}).get("children", [])]
    names = [child.get("model_name", "") for child in children]
    is_bar = any(name.endswith("ProgressModel") for name in names)
    if model.get("model_name") != "HBoxModel" or not is_bar:
        return None
    texts = [child.get("state", {}).get("value", "") for child in children
             if child.get("model_name") == "HTMLModel"]
    # An HTML widget's value is HTML ("00:15&lt;00:00"), and tqdm pads with figure spaces.
    words = html.unescape(" ".join(texts)).split()
    return " ".join(words) or "(a progress bar, shown while the cell ran)"


def live_note():
    note = nodes.admonition(classes=["note", "widget-live-note"])
    note += nodes.title(text=LIVE_TITLE)
    note += nodes.paragraph(text=LIVE_TEXT)
    return note


def model_id_of(raw):
    """The model id in myst-nb's script tag for a widget view, or None."""
    match = _SCRIPT.match(raw.astext().strip())
    try:
        view = json.loads(match.group(1)) if match else {}
        view = json.loads(view) if isinstance(view, str) else view
    except ValueError:
        return None
    return view.get("model_id") if isinstance(view, dict) else None


def replacement(model_id, state, plain):
    """The node that stands for one saved widget view."""
    model = state.get(model_id)
    if model:
        text = progress_text(model, state)
    elif _TQDM.search(plain.get(model_id, "")):
        # No saved state, but the text/plain fallback is a tqdm bar's ("... 0/400 [00:00<?").
        text = "(a progress bar, shown while the cell ran)"
    else:
        text = None
    if text is not None:
        return nodes.literal_block(text, text, classes=["widget-progress"], language="none")
    return live_note()


def replace_widget_views(app, doctree):
    docname = app.env.docname
    if not docname or app.env.doc2path(docname).suffix != ".ipynb":
        return
    # myst-nb also embeds the saved state for ipywidgets' HTML manager, which the site does
    # not load (it would come from a CDN): leave the unused blob out of the page.
    nb_metadata = getattr(app.env, "nb_metadata", {}).get(docname, {})
    nb_metadata.get("js_files", {}).pop("ipywidgets_state", None)
    views = [raw for raw in doctree.findall(nodes.raw) if VIEW in raw.astext()[:80]]
    if not views:
        return
    state, plain = read_widgets(app.env.doc2path(docname))
    for raw in views:
        raw.replace_self(replacement(model_id_of(raw), state, plain))


def setup(app):
    app.connect("doctree-read", replace_widget_views)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
