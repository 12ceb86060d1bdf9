"""The documentation builds, strictly, and the front pages' links lead somewhere.

``mkdocs build --strict`` (mkdocs.yml: link, anchor and nav validation as warnings) fails on a broken
link, a missing anchor, a page left out of the nav, or an API page whose ``::: vaekit.module`` names
something that does not exist, so a rename in src/ that the docs did not follow fails the suite.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 250
# [text](target) and ![alt](target), not inside inline code
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_site_builds_strictly(tmp_path: Path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python") if not _installed(m)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[docs]' (make install does)")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    problems = [line for line in result.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert result.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or [result.stderr])
    assert (site / "index.html").is_file()
    assert (site / "api" / "models.gaussian" / "index.html").is_file()
    scripts = [str(p.relative_to(site)) for p in site.rglob("*.py")]
    assert not scripts, f"scripts in docs/ (screenshots.py, ...) are not part of the site: {scripts}"


def test_every_module_has_an_api_page():
    """Issue 34: the API reference covers every module of the package (internal ones say so), so that a
    new module without a page fails here; mkdocs' nav validation then holds each page in the nav."""
    package = ROOT / "src" / "vaekit"
    modules = {
        ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
        if path.name != "__main__.py"
    }
    documented = {
        line.split(":::", 1)[1].strip()
        for page in (ROOT / "docs" / "api").glob("*.md")
        for line in page.read_text().splitlines()
        if line.startswith(":::")
    }
    assert not sorted(modules - documented), "modules without a page in docs/api"
    nav = (ROOT / "mkdocs.yml").read_text()
    assert not [p.name for p in (ROOT / "docs" / "api").glob("*.md") if f"api/{p.name}" not in nav]


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move reference material to docs/"
    )


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_exist(name: str):
    """Every relative link and picture in README.md and CONTRIBUTING.md leads to a file in the checkout
    (GitHub renders them as they are; mkdocs checks the pages under docs/)."""
    path = ROOT / name
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file = target.split("#", 1)[0]
        if file and not (path.parent / file).exists():
            broken.append(target)
    assert not broken, f"{name} links to files that do not exist: {broken}"


def relative_links(markdown: str) -> list[str]:
    """The link targets of ``markdown`` that are neither URLs nor links within the page, outside code."""
    markdown = re.sub(r"(?ms)^(```|~~~).*?^\1", "", markdown)  # fenced code blocks
    markdown = re.sub(r"`[^`\n]*`", "", markdown)  # inline code
    targets = LINK.findall(markdown)
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, re.IGNORECASE)]


def test_relative_links_are_found():
    """The link finder itself: a check that finds nothing passes for the wrong reason."""
    text = '[a](docs/a.md) ![b](docs/b.png "title") [c](https://x.org) [d](#top) `[e](no.md)`'
    assert relative_links(text) == ["docs/a.md", "docs/b.png"]
    assert len(relative_links((ROOT / "README.md").read_text(encoding="utf-8"))) > 10


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False
