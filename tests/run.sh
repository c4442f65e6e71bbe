#!/usr/bin/env bash
# Every check of the course, in one go. `make test` runs it after setting up .venv.
# conftest.py points HOME and the Jupyter, IPython and matplotlib dirs at a temp folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export PYTHONDONTWRITEBYTECODE=1

echo "== ruff on lib/, tests/ and tools/"
"$bin/ruff" check --no-cache lib tests tools

echo "== unit and grading tests"
"$bin/python" -m pytest tests -q

shopt -s nullglob
notebooks=(course/*.ipynb)
if (( ${#notebooks[@]} )); then
    echo "== lecture notebooks re-executed and compared with nbval (${#notebooks[@]} notebooks)"
    "$bin/python" -m pytest -q --nbval --nbval-current-env \
        --nbval-sanitize-with tests/nbval_sanitize.cfg "${notebooks[@]}"
else
    echo "== no lecture notebooks in course/ yet: nbval skipped"
fi

echo "== the course in JupyterLab, run in headless Chromium (skipped, with the reason, without one)"
"$bin/python" -m pytest tests/browser -q
