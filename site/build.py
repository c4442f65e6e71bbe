"""Build the course website from the committed notebooks, without running them.

    .venv/bin/python site/build.py [--builddir site/_build] [--strict] [--repo .]

Stages the pages of site/ and copies of course/*.ipynb and release/*/*.ipynb into
BUILDDIR/source, keeping their paths in the repository (so a page's launch buttons and
its download link name the file the repository holds), then runs Sphinx with site/ as
its configuration folder. The notebooks in the repository are only read. The site is
BUILDDIR/html; open BUILDDIR/html/index.html. Every build is a full one (a fresh
environment), so every warning is reported every time, and written to
BUILDDIR/warnings.txt; --strict turns them into a failure (`make site` and the tests
use it). --repo stages the notebooks of another checkout (the tests use a small one).
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

SITE = Path(__file__).resolve().parent
REPO = SITE.parent
PAGES = ["index.md"]  # the site's own pages, beside conf.py
NOTEBOOKS = ["course/*.ipynb", "release/*/*.ipynb"]


def notebooks(repo=REPO):
    """The notebooks the site shows, as paths relative to the repository."""
    return [path.relative_to(repo) for pattern in NOTEBOOKS for path in sorted(repo.glob(pattern))
            if ".ipynb_checkpoints" not in path.parts]


def stage(source, repo=REPO):
    """A fresh source folder: the site's pages and copies of the notebooks."""
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    for page in PAGES:
        shutil.copy2(SITE / page, source / page)
    staged = notebooks(repo)
    for rel in staged:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, source / rel)
    return staged


def build(builddir, strict=False, quiet=False, repo=REPO):
    """Stage and run Sphinx; returns (Sphinx's exit code, seconds, notebooks staged)."""
    builddir = Path(builddir).resolve()
    started = time.monotonic()
    staged = stage(builddir / "source", Path(repo).resolve())
    html = builddir / "html"
    if html.exists():
        shutil.rmtree(html)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(SITE), "-E",
               "-d", str(builddir / "doctrees"), "-w", str(builddir / "warnings.txt"),
               str(builddir / "source"), str(html)]
    if strict:
        command += ["-W", "--keep-going"]
    if quiet:
        command += ["-q"]
    code = subprocess.run(command, cwd=REPO).returncode
    return code, time.monotonic() - started, staged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builddir", type=Path, default=SITE / "_build",
                        help="where the staged sources and the html go (default site/_build)")
    parser.add_argument("--strict", action="store_true", help="fail on any warning")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the checkout whose notebooks to stage (default: this one)")
    args = parser.parse_args(argv)
    code, seconds, staged = build(args.builddir, args.strict, args.quiet, args.repo)
    builddir = args.builddir.resolve()
    warnings = (builddir / "warnings.txt").read_text(encoding="utf-8").count("WARNING")
    if code == 0:
        print(f"site built in {seconds:.0f} s from {len(staged)} notebooks, {warnings} warnings: "
              f"{builddir / 'html' / 'index.html'}")
    else:
        print(f"site build FAILED (sphinx exit code {code}, {warnings} warnings, {seconds:.0f} s)",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
