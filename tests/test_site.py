"""The course website (site/, `make site`): built once from the committed notebooks, offline.

The build is site/build.py, the command `make site` runs, into a temp folder; it must
finish without a single Sphinx warning. Then LinkChecker (from PyPI) crawls the built
pages through a local HTTP server and must find every internal link, image, script and
stylesheet; external links (the launch buttons, the repository) are never fetched. The
pages themselves are opened in Chromium by tests/browser/test_site_in_browser.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from functools import cache, partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "site" / "build.py"
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix()
                   for pattern in ("course/*.ipynb", "release/*/*.ipynb")
                   for p in ROOT.glob(pattern))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.site


def build_site(builddir, repo=ROOT):
    """Run `site/build.py --strict` as `make site` does; returns the finished process."""
    return subprocess.run([sys.executable, str(BUILD), "--builddir", str(builddir), "--strict",
                           "-q", "--repo", str(repo)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once for this file: (the build folder, the finished build)."""
    builddir = tmp_path_factory.mktemp("site")
    return builddir, build_site(builddir)


@pytest.fixture(scope="module")
def html(site):
    builddir, done = site
    assert done.returncode == 0, done.stdout + done.stderr
    return builddir / "html"


def page_of(notebook):
    return notebook.removesuffix(".ipynb") + ".html"


@cache
def soup(path):
    """A built page, parsed once (the tests only read it)."""
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_the_site_builds_with_zero_warnings(site):
    builddir, done = site
    assert done.returncode == 0, done.stdout + done.stderr
    assert (builddir / "warnings.txt").read_text() == ""
    assert re.search(rf"from {len(NOTEBOOKS)} notebooks, 0 warnings", done.stdout), done.stdout


def test_every_lecture_and_assignment_has_a_page_and_the_landing_page_links_them(html):
    assert len(NOTEBOOKS) >= 11  # seven lectures, four assignments
    landing = soup(html / "index.html")
    links = {a["href"].split("#")[0] for a in landing.select("article a[href]")}
    for notebook in NOTEBOOKS:
        assert (html / page_of(notebook)).is_file(), notebook
        assert page_of(notebook) in links, f"the landing page does not link {notebook}"


def test_the_notebooks_were_not_executed_and_the_sources_are_left_alone(site, html):
    builddir, _ = site
    for notebook in NOTEBOOKS:
        # "Download this notebook" serves the committed file, byte for byte.
        assert (html / "_sources" / notebook).read_bytes() == (ROOT / notebook).read_bytes()
    staged = builddir / "source"
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*.ipynb")) == NOTEBOOKS


def test_each_notebook_page_offers_its_download_and_the_three_launch_buttons(html):
    for notebook in NOTEBOOKS:
        page = soup(html / page_of(notebook))
        hrefs = [a.get("href", "") for a in page.find_all("a")]
        assert any(h.endswith(f"_sources/{notebook}") for h in hrefs), notebook
        binder = [h for h in hrefs if h.startswith("https://mybinder.org/v2/gh/")]
        colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/github/")]
        hub = [h for h in hrefs if "/hub/user-redirect/git-pull?" in h]
        assert len(binder) == len(colab) == len(hub) == 1, (notebook, binder, colab, hub)
        assert binder[0].endswith(f"/main?urlpath=lab/tree/{notebook}")
        assert colab[0].endswith(f"/blob/main/{notebook}")
        query = parse_qs(urlparse(hub[0]).query)
        assert query["branch"] == ["main"]
        assert query["urlpath"] == [f"lab/tree/{urlparse(query['repo'][0]).path.split('/')[-1]}/"
                                    f"{notebook}"]


def test_the_repository_and_hub_urls_are_settings_of_the_build(tmp_path):
    # One place: conf.py, or the environment for a deployment (read the same way).
    conf = (ROOT / "site" / "conf.py").read_text()
    assert conf.count("https://github.com/OWNER/rnn-course") == 1
    assert 'os.environ.get("RNNCOURSE_SITE_HUB"' in conf


def test_no_page_loads_anything_from_another_host(html):
    # MathJax included: the site renders offline.
    for page in html.rglob("*.html"):
        tree = soup(page)
        for tag, attr in (("script", "src"), ("link", "href"), ("img", "src")):
            for element in tree.find_all(tag):
                url = element.get(attr, "")
                assert not urlparse(url).netloc, f"{page.relative_to(html)} loads {url}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    lecture = soup(html / "course" / "05-vanishing-gradient.html")
    assert any("mathjax/tex-chtml.js" in s.get("src", "") for s in lecture.find_all("script"))


def test_widgets_become_notes_and_progress_bars_their_last_line(html):
    for notebook in NOTEBOOKS:
        page = (html / page_of(notebook)).read_text(encoding="utf-8")
        assert WIDGET_VIEW not in page, notebook  # no empty widget placeholder is left
    # Lecture 01's window slider: a note, and the static figure further down the page.
    page = soup(html / "course" / "01-thought-experiment.html")
    notes = page.select(".widget-live-note")
    assert len(notes) == 1 and "Live in JupyterLab" in notes[0].get_text()
    assert "<img" in str(notes[0].find_next("img"))  # the static figure is on the page
    bars = [pre.get_text() for p in (html / "course").glob("*.html")
            for pre in soup(p).select(".widget-progress pre")]
    assert bars and all(re.search(r"100%.*\d+/\d+ \[", bar) for bar in bars), bars[:3]


def test_every_lecture_figure_carries_its_alt_text_from_the_notebook(html):
    # myst-nb reads the code cell's metadata mystnb.image.alt (tests/test_alt_text.py checks
    # the notebooks); without it Sphinx would write the image's path as its alt.
    for notebook in (nb for nb in NOTEBOOKS if nb.startswith("course/")):
        cells = json.loads((ROOT / notebook).read_text())["cells"]
        expected = [cell["metadata"]["mystnb"]["image"]["alt"] for cell in cells
                    for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
        images = soup(html / page_of(notebook)).select("article img")
        assert expected and [img.get("alt") for img in images] == expected, notebook


def test_a_widget_without_saved_state_still_builds_cleanly(tmp_path):
    """A notebook saved without its widget state: the build neither warns nor breaks,
    a progress bar is still recognised and any other widget gets the note."""
    repo = tmp_path / "repo"
    kept = ("course/01-thought-experiment.ipynb", "course/03-name-prediction.ipynb")
    for notebook in NOTEBOOKS:
        nb = json.loads((ROOT / notebook).read_text())
        nb["metadata"].pop("widgets", None)
        if notebook not in kept:
            for cell in nb["cells"]:  # small and quick: only these two keep their outputs
                cell.pop("attachments", None)
                if cell["cell_type"] == "code":
                    cell["outputs"] = []
        (repo / notebook).parent.mkdir(parents=True, exist_ok=True)
        (repo / notebook).write_text(json.dumps(nb))
    done = build_site(tmp_path / "build", repo)
    assert done.returncode == 0, done.stdout + done.stderr
    html = tmp_path / "build" / "html" / "course"
    first = soup(html / "01-thought-experiment.html")
    assert first.select(".widget-live-note")
    names = soup(html / "03-name-prediction.html")
    bars = [pre.get_text().strip() for pre in names.select(".widget-progress pre")]
    assert bars and set(bars) == {"(a progress bar, shown while the cell ran)"}
    assert names.select(".widget-live-note")  # the connectivity explorer


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(html):
    """The built site on a free local port, for LinkChecker (which, run as root, drops to
    user nobody and so cannot read a private temp folder itself)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def linkchecker(url, home):
    """LinkChecker on `url`, internal links only; returns (exit code, the broken ones)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["HOME"] = str(home)
    exe = shutil.which("linkchecker", path=str(Path(sys.executable).parent)) or "linkchecker"
    done = subprocess.run([exe, "--no-status", "--output=csv", url],
                          capture_output=True, text=True, timeout=900, env=env)
    rows = [line for line in done.stdout.splitlines()
            if line and not line.startswith("#") and not line.startswith("urlname;")]
    return done.returncode, rows


def test_every_internal_link_resolves_with_linkchecker(served, html, tmp_path):
    code, broken = linkchecker(served + "index.html", tmp_path)
    assert (code, broken) == (0, []), "\n".join(broken)


def test_linkchecker_here_does_report_a_broken_link(tmp_path):
    # The check above means something only if this LinkChecker, run this way, finds one.
    site = tmp_path / "tiny"
    site.mkdir()
    (site / "index.html").write_text('<a href="there.html">t</a> <a href="gone.html">g</a>'
                                     '<img src="missing.png"> <a href="https://example.org/">e</a>')
    (site / "there.html").write_text("<p>here</p>")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, broken = linkchecker(f"http://127.0.0.1:{server.server_address[1]}/index.html",
                                   tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert sorted(row.split(";")[0] for row in broken) == ["gone.html", "missing.png"]


def test_every_internal_anchor_exists(html):
    # LinkChecker's anchor plugin takes minutes on these pages; the same check, directly.
    ids = {}
    for page in html.rglob("*.html"):
        ids[page] = {e["id"] for e in soup(page).find_all(id=True)}
    missing = []
    for page in ids:
        for a in soup(page).find_all("a", href=True):
            parts = urlparse(a["href"])
            if parts.netloc or parts.scheme or not parts.fragment:
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target in ids and unquote(parts.fragment) not in ids[target]:
                missing.append(f"{page.relative_to(html)} -> {a['href']}")
    assert missing == []


def test_binder_reads_a_python_it_can_pick_and_installs_the_pins_like_make_setup():
    # repo2docker's rules: a binder/ folder wins over the root's files; the base environment's
    # Python comes from a `python=X.Y` line (its own pattern, below); pip lines that name a
    # local file (-r, -e) in environment.yml break under old micromamba, so there are none.
    import yaml

    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    pythons = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    match = re.match(r"python\s*=+\s*([\d\.]*)", pythons[0])
    assert len(pythons) == 1 and match, pythons
    make = (ROOT / "Makefile").read_text()
    lo = re.search(r"^PY_MIN := (\d+\.\d+)", make, re.M).group(1)
    hi = re.search(r"^PY_MAX := (\d+\.\d+)", make, re.M).group(1)
    minor = tuple(map(int, match.group(1).split(".")[:2]))
    assert tuple(map(int, lo.split("."))) <= minor <= tuple(map(int, hi.split(".")))
    assert not [d for d in env["dependencies"] if isinstance(d, dict)], "no pip section"
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK) and post.read_text().startswith("#!/bin/bash\n")
    script = post.read_text()
    assert "set -euo pipefail" in script and "requirements.txt" in script
    assert "--no-deps -e ." in script
    assert subprocess.run(["bash", "-n", str(post)]).returncode == 0
