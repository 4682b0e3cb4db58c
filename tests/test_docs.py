"""The README and the pages under docs/ link to files that exist, and the README stays a
guide: about one screen of sections, with the commands CI and the cluster run."""

import re

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target), not URLs or anchors within the page
LINK = re.compile(r"!?\[[^\]]*\]\((?!https?://|#)([^)#\s]+)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files(page):
    for target in LINK.findall(page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_readme_is_a_guide_with_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    setup = "python3.11 -m venv .venv && . .venv/bin/activate && pip install -e "
    assert f"{setup}. && python -m search.run --trials 50" in readme  # the main job
    tests = f"{setup}'.[test]' && pytest"
    assert tests in readme and tests in (REPO / ".ci" / "run").read_text()  # CI runs it
