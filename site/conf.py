"""Sphinx configuration of the course website (`make site`, or `python site/build.py`).

The pages are the committed notebooks, shown with their saved outputs: nothing is
executed. site/build.py stages them, with the pages of this folder, into a source
folder that keeps their paths in the repository (course/..., release/...), so each
page's launch buttons open the same file in the repository.

The three settings a deployment changes are just below; each can also be given in the
environment (RNNCOURSE_SITE_REPOSITORY, RNNCOURSE_SITE_BRANCH, RNNCOURSE_SITE_HUB).
"""

import os
import sys
from importlib.metadata import distribution
from pathlib import Path

# --- The settings: where the repository lives, and the JupyterHub the course runs on -----------
# The repository on GitHub that Binder, Colab and nbgitpuller open the notebooks from.
REPOSITORY_URL = os.environ.get("RNNCOURSE_SITE_REPOSITORY", "https://github.com/OWNER/rnn-course")
BRANCH = os.environ.get("RNNCOURSE_SITE_BRANCH", "main")
# A JupyterHub with nbgitpuller installed; its "JupyterHub" button clones the repository
# there (or pulls it again) and opens the notebook.
JUPYTERHUB_URL = os.environ.get("RNNCOURSE_SITE_HUB", "https://hub.example.org")
BINDERHUB_URL = "https://mybinder.org"
COLAB_URL = "https://colab.research.google.com"
# ------------------------------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "Recurrent networks and the vanishing gradient"
author = "the course authors"
copyright = "the course authors; prose and figures CC BY 4.0, code MIT"

extensions = [
    "myst_nb",
    "widget_notes",  # site/_ext: a saved widget becomes a note (no kernel on a web page)
]

# The committed outputs are the content: never run a notebook to build the site.
nb_execution_mode = "off"
# ipywidgets' HTML manager would come from a CDN; the pages show notes instead.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# MathJax 3.2.2 from the sphinx-mathjax-offline package, copied into _static/mathjax by
# html_static_path below: the site renders its math with no network at all.
MATHJAX_FILES = distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static")
mathjax_path = "mathjax/tex-chtml.js"
# Set, so that myst-parser writes its settings for MathJax 3 (Sphinx 9 assumes 4).
mathjax3_config = {"options": {}}

# Alt text for a figure: myst-nb reads it from the metadata of the code cell that drew it,
#   "metadata": {"mystnb": {"image": {"alt": "Gradient norm against the step, log scale"}}}
# (one alt per cell; every image output of that cell gets it). Without one, Sphinx writes
# the image's file name as its alt. {"mystnb": {"figure": {"caption": ...}}} adds a caption.

html_theme = "sphinx_book_theme"
html_title = "RNNs and the vanishing gradient"
html_static_path = ["_static", str(MATHJAX_FILES)]
html_css_files = ["course.css"]
html_last_updated_fmt = None
# "Download this notebook" offers the .ipynb itself, not a copy named .ipynb.txt.
html_sourcelink_suffix = ""
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": BRANCH,
    "path_to_docs": "",  # the staged sources keep their paths in the repository
    "use_repository_button": True,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "launch_buttons": {
        "notebook_interface": "jupyterlab",
        "binderhub_url": BINDERHUB_URL,
        "colab_url": COLAB_URL,
        "jupyterhub_url": JUPYTERHUB_URL,
    },
}

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
