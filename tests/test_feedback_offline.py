"""Feedback pages read offline: MathJax is inside the page, and Chromium with no network
renders its math.

nbgrader's release_feedback copies only the .html file to the student, so nothing may be
loaded from beside the page nor from the internet. One feedback page is made from a scratch
course: the reference submission put in autograded/ as if graded (its scores set through the
Gradebook API; nothing runs), then rnncourse-instructor's feedback step.
"""

import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from rnngrading import feedback as feedback_module
from rnngrading import instructor
from rnngrading.course import FIXTURES, REPO, CourseError, gradebook
from rnngrading.feedback import html_text, inline_mathjax
from rnngrading.fixtures import build_submission
from rnngrading.gradebook import quiet_sqlalchemy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(scratch_course):
    """The feedback page of a reference submission of jacobian."""
    root = scratch_course("feedback")
    nb = build_submission(root / "source" / "jacobian" / "jacobian.ipynb",
                          root / "release" / "jacobian" / "jacobian.ipynb",
                          FIXTURES / "jacobian" / "reference")
    graded = root / "autograded" / "alice" / "jacobian"
    graded.mkdir(parents=True)
    nbformat.write(nb, graded / "jacobian.ipynb")
    with quiet_sqlalchemy(), gradebook(root) as gb:
        gb.update_or_create_student("alice")
        gb.add_submission("jacobian", "alice")
        for grade in gb.find_submission_notebook("jacobian", "jacobian", "alice").grades:
            if grade.cell.cell_type == "code":
                grade.auto_score = grade.max_score
        gb.db.commit()
    instructor.feedback(root, ["jacobian"])
    return root / "feedback" / "alice" / "jacobian" / "jacobian.html"


def course_config(root):
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


class _Addresses(HTMLParser):
    """Every address a page's <script src> and <link href> point at."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        wanted = {"script": "src", "link": "href", "img": "src", "iframe": "src"}.get(tag)
        self.found += [value for name, value in attrs if name == wanted and value]


@pytest.mark.grading
def test_the_page_loads_nothing_from_elsewhere(page):
    parser = _Addresses()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.found == [], parser.found[:5]
    text = page.read_text(encoding="utf-8")
    assert "cdnjs.cloudflare.com" not in text and "MathJax.Hub.Config" not in text
    assert "window.MathJax" in text  # MathJax 3's own configuration, inlined


@pytest.mark.grading
@pytest.mark.browser
def test_chromium_offline_renders_the_math(page, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium")
    source = html_text(page.read_text(encoding="utf-8"))
    assert "$\\partial" in source, "the page has no TeX to render: the test would prove nothing"
    # the page alone in a folder of its own, as a student gets it from release_feedback
    alone = tmp_path / "fetched" / "jacobian.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True)
            tab = context.new_page()
            asked = []
            tab.on("request", lambda request: asked.append(request.url))
            tab.goto(alone.as_uri())
            tab.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise",
                                  timeout=30_000)
            tab.evaluate("MathJax.startup.promise")
            rendered = tab.locator("mjx-container svg").count()
            shown = tab.inner_text("body")
        finally:
            browser.close()
    assert [url for url in asked if not url.startswith("file:")] == []
    assert rendered >= source.count("$\\partial") // 2 > 0
    assert "$\\partial" not in shown and "\\partial h" not in shown


@pytest.mark.grading
def test_formgraders_generate_feedback_button_makes_the_same_offline_page(page):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    root = page.parents[3]
    page.unlink()
    config = course_config(root)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    result = api.generate_feedback("jacobian", "alice", force=True)  # what the button calls
    assert result["success"], result.get("error", "")[-2000:]
    text = page.read_text(encoding="utf-8")
    assert "window.MathJax" in text and "cdnjs.cloudflare.com" not in text


def test_formgraders_own_grading_page_keeps_its_template(tmp_path):
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config

    root = tmp_path / "course"
    root.mkdir()
    for name in ("nbgrader_config.py", "grading_limits.toml"):
        shutil.copy2(REPO / name, root / name)
    config = Config()
    config.HTMLExporter.template_name = "formgrade"  # formgrader's extension sets this
    config.merge(course_config(root))  # and the course's config is read over it
    exporter = HTMLExporter(config=config)
    assert exporter.template.filename.endswith(str(Path("formgrade", "index.html.j2")))


def test_a_missing_mathjax_package_is_named_with_the_fix(monkeypatch):
    def nowhere(name):
        raise feedback_module.PackageNotFoundError(name)

    monkeypatch.setattr(feedback_module, "distribution", nowhere)
    with pytest.raises(CourseError, match="pip install sphinx-mathjax-offline"):
        inline_mathjax.__wrapped__("tex-svg-full.js")


def test_the_inlined_script_cannot_end_its_element_early():
    script = inline_mathjax("tex-svg-full.js")
    assert len(script) > 1_000_000 and "MathJax" in script
    assert "</script" not in script.lower()
