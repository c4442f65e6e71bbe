"""The course website as a reader meets it: every page in headless Chromium, offline.

The site is built once for the session (site/build.py --strict, as `make site` does) into
a temp folder and served on a free local port. Chromium may load nothing from any other
host: every such request is refused and counted. Each page must open, show its math
rendered by the site's own MathJax (no TeX source left, MathJax's elements present),
load every image with a non-zero natural size, and, for a notebook, offer the download
link and the Binder, Colab and JupyterHub launch buttons with well-formed URLs. Every
figure of a lecture must carry its alt text from the notebook, not a file name.

Screenshots of the landing page and of lecture 05 go to artifacts/site/ (ignored by git).
Without a Chromium these tests are skipped, like the rest of tests/browser.
"""

import json
import os
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from labdriver import ASSIGNMENTS, LECTURES, REPO

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "artifacts" / "site"
NOTEBOOKS = LECTURES + ASSIGNMENTS
PAGES = ["index.html"] + [nb.removesuffix(".ipynb") + ".html" for nb in NOTEBOOKS]
MATHJAX_S = 60  # a long lecture on a loaded 2-core machine
ALT_MIN = 40  # characters of alt text: a sentence, as tests/test_alt_text.py asks

pytestmark = [
    pytest.mark.site,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"),
]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    """The site, built once and served on 127.0.0.1; yields its base URL."""
    builddir = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, str(REPO / "site" / "build.py"), "--builddir",
                           str(builddir), "--strict", "-q"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(_Quiet, directory=str(builddir / "html")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def offline(browser, site_url):
    """A browser context that refuses every request to another host, and lists them."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    refused = []
    local = urlparse(site_url).netloc

    def only_local(route):
        url = route.request.url
        if urlparse(url).netloc == local or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    context.route("**/*", only_local)
    yield context, refused
    context.close()


def open_page(offline, site_url, page_path):
    context, refused = offline
    before = len(refused)
    page = context.new_page()
    page.goto(site_url + page_path, wait_until="load")
    return page, refused[before:]


def wait_for_math(page):
    """MathJax's first typeset finished; returns how many formulas the page holds."""
    formulas = page.locator("article .math").count()
    if formulas:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                               timeout=MATHJAX_S * 1000)
        page.evaluate("() => MathJax.startup.promise")
    return formulas


@pytest.mark.parametrize("page_path", PAGES)
def test_page_opens_offline_with_math_rendered_and_every_image_loaded(offline, site_url,
                                                                      page_path):
    page, refused = open_page(offline, site_url, page_path)
    try:
        assert page.locator("article h1").count() == 1, "no title"
        formulas = wait_for_math(page)
        if page_path == "index.html" or "course/0" in page_path:
            assert formulas > 0, "a lecture without one formula: was the math parsed?"
        rendered = page.locator("article mjx-container").count()
        assert rendered >= formulas, f"{formulas} formulas, {rendered} rendered by MathJax"
        # No TeX source left over: every formula's text is MathJax's, not \( or $$.
        raw = page.evaluate(r"""() => [...document.querySelectorAll('article .math')]
            .filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60))""")
        assert raw == []
        text = page.locator("article").inner_text()
        assert "$$" not in text and "\\[" not in text.replace("\\\\[", "")
        # Every image, the figures and the theme's own, decoded with a real size.
        page.wait_for_function("() => [...document.images].every(i => i.complete)")
        broken = page.evaluate("""() => [...document.images]
            .filter(i => !(i.naturalWidth > 0 && i.naturalHeight > 0)).map(i => i.src)""")
        assert broken == []
        assert refused == [], f"requests to other hosts: {refused[:5]}"
        if page_path == "index.html":
            page.screenshot(path=ARTIFACTS / "index.png", full_page=True)
        if page_path.startswith("course/05"):
            page.screenshot(path=ARTIFACTS / "05-vanishing-gradient.png")
            page.locator("article img").first.scroll_into_view_if_needed()
            page.screenshot(path=ARTIFACTS / "05-vanishing-gradient-figure.png")
    finally:
        page.close()


@pytest.mark.parametrize("notebook", LECTURES)
def test_every_figure_on_a_lecture_page_has_real_alt_text(offline, site_url, notebook):
    """What a screen reader says for each figure: the alt text from the notebook (cell
    metadata mystnb.image.alt, tests/test_alt_text.py), never a file name or nothing."""
    page, _ = open_page(offline, site_url, notebook.removesuffix(".ipynb") + ".html")
    try:
        figures = page.evaluate("""() => [...document.querySelectorAll('article img')]
            .map(i => [i.getAttribute('src') || '', i.getAttribute('alt'),
                       i.getAttribute('role'), i.getAttribute('aria-hidden')])""")
        assert figures, "a lecture page without a figure"
        expected = [cell["metadata"]["mystnb"]["image"]["alt"]
                    for cell in json.loads((REPO / notebook).read_text())["cells"]
                    for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
        bad = []
        for src, alt, role, hidden in figures:
            name = src.rsplit("/", 1)[-1]
            if (alt is None or len(alt.strip()) < ALT_MIN or (name and name in alt)
                    or "_images/" in alt or alt.lower().endswith((".png", ".jpg", ".svg"))
                    or role == "presentation" or hidden == "true"):
                bad.append(f"{name}: alt={alt!r}")
        assert bad == [], "figures a screen reader cannot describe:\n" + "\n".join(bad)
        # The page says what the notebook says, figure by figure, in order.
        assert [alt for _, alt, _, _ in figures] == expected
    finally:
        page.close()


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_page_has_launch_buttons_and_a_download_link(offline, site_url, notebook):
    page, _ = open_page(offline, site_url, notebook.removesuffix(".ipynb") + ".html")
    try:
        links = page.evaluate("""() => [...document.querySelectorAll(
            '.dropdown-launch-buttons a, .dropdown-download-buttons a')]
            .map(a => [a.textContent.trim(), a.href])""")
        by_name = {name: href for name, href in links}
        binder = urlparse(by_name["Binder"])
        colab = urlparse(by_name["Colab"])
        hub = urlparse(by_name["JupyterHub"])
        for url in (binder, colab, hub):
            assert url.scheme == "https" and url.netloc and " " not in url.geturl()
        assert binder.path.startswith("/v2/gh/") and binder.path.endswith("/main")
        assert parse_qs(binder.query)["urlpath"] == [f"lab/tree/{notebook}"]
        assert colab.netloc == "colab.research.google.com"
        assert colab.path.endswith(f"/blob/main/{notebook}")
        query = parse_qs(hub.query)
        assert hub.path == "/hub/user-redirect/git-pull"
        repo = urlparse(query["repo"][0])
        assert repo.netloc == "github.com"
        assert query["urlpath"] == [f"lab/tree/{repo.path.rsplit('/', 1)[-1]}/{notebook}"]
        assert by_name[".ipynb"].endswith(f"/_sources/{notebook}")
        # The download link serves the notebook itself.
        response = page.request.get(by_name[".ipynb"])
        assert response.ok and response.json()["cells"]
        # The sidebar lists every lecture and assignment.
        sidebar = page.locator("nav.bd-docs-nav a.reference.internal").count()
        assert sidebar >= len(NOTEBOOKS)
    finally:
        page.close()


def test_search_finds_a_lecture(offline, site_url):
    page, refused = open_page(offline, site_url, "search.html?q=jacobian")
    try:
        page.wait_for_selector("#search-results ul.search li", timeout=60_000)
        hits = page.locator("#search-results ul.search li a").all_inner_texts()
        assert any("vanishing gradient" in hit.lower() for hit in hits), hits
        assert refused == []
    finally:
        page.close()
