"""Collection rules for tests/.

The browser tests (tests/browser/) start JupyterLab and Chromium and take minutes.
They run as their own step, `pytest tests/browser`, never inside `pytest tests`.
"""

collect_ignore = ["browser"]
