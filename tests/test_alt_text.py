"""Every figure of the lectures has alt text, for a screen reader on the site and in JupyterLab.

A figure is an image/png output of a code cell. Its alt text sits in two places:
- the code cell's metadata, {"mystnb": {"image": {"alt": ...}}}, which myst-nb writes into
  the website's <img alt="..."> (one alt per cell: every image of the cell gets it);
- the output's own metadata, {"image/png": {"alt": ...}}, the place IPython.display.Image(alt=)
  and nbconvert use, so the text travels with the image wherever the notebook is rendered.
The website's pages themselves are checked in tests/browser/test_site_in_browser.py.
"""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LECTURES = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("course/0*.ipynb"))
MIN_ALT = 40  # characters: a sentence that says what the figure shows, not a label


def figure_cells(notebook):
    """[(cell, its image outputs)] for every code cell of `notebook` that drew a figure."""
    nb = json.loads((ROOT / notebook).read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
        if images:
            found.append((cell, images))
    return found


def test_there_are_seven_lectures_with_figures():
    assert len(LECTURES) == 7
    assert sum(len(figure_cells(nb)) for nb in LECTURES) >= 20


@pytest.mark.parametrize("notebook", LECTURES)
def test_every_figure_has_alt_text_in_the_cell_and_in_each_image_output(notebook):
    missing = []
    for cell, images in figure_cells(notebook):
        cell_alt = cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")
        if len(cell_alt.strip()) < MIN_ALT:
            missing.append(f"cell {cell['id']}: metadata.mystnb.image.alt is {cell_alt!r}")
        for i, out in enumerate(images):
            alt = out.get("metadata", {}).get("image/png", {}).get("alt", "")
            if len(alt.strip()) < MIN_ALT:
                missing.append(f"cell {cell['id']}, image {i}: metadata['image/png'].alt is "
                               f"{alt!r}")
    assert missing == [], f"{notebook}: figures without alt text (at least {MIN_ALT} " \
                          "characters, saying what the figure shows):\n" + "\n".join(missing)


@pytest.mark.parametrize("notebook", LECTURES)
def test_alt_text_says_more_than_the_file_name_or_the_figure_size(notebook):
    for cell, images in figure_cells(notebook):
        alt = cell["metadata"]["mystnb"]["image"]["alt"]
        texts = ["".join(o["data"].get("text/plain", "")) for o in images]
        assert not alt.lower().endswith((".png", ".jpg", ".svg")), (cell["id"], alt)
        assert "<Figure size" not in alt and alt not in texts, (cell["id"], alt)
        # The same words in both places: one description per figure, not two to keep apart.
        assert all(o["metadata"]["image/png"]["alt"] == alt for o in images), cell["id"]
