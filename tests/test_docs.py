"""The README is the front door and docs/ holds the rest: every relative link and anchor resolves, the
README stays short, its first screen holds the set-up, the main job and the test command, and it
carries no dated measurement (measured figures live in docs/ beside the command that makes them)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FIRST_SCREEN = 40  # lines


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a Markdown page: lower-cased headings, punctuation dropped, spaces as '-'."""
    out = set()
    for line in page.read_text().splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower().replace("`", ""))
            out.add(text.replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not followed (no network)
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_anchor_rule_matches_githubs_on_headings_with_punctuation(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Which release changed this program?\n## `check --expect`, bit for bit\n")
    assert _anchors(page) == {"which-release-changed-this-program", "check---expect-bit-for-bit"}


def test_every_docs_page_is_linked_from_the_readme():
    readme = ROOT / "README.md"
    linked = {(readme.parent / t.partition("#")[0]).resolve() for t in LINK.findall(readme.read_text())}
    assert not [p.name for p in PAGES[1:] if p.resolve() not in linked]


def test_readme_is_short_and_its_first_screen_sets_up_checks_and_tests():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; move detail to docs/"
    first = "\n".join(lines[:FIRST_SCREEN])
    assert re.search(r"pip install torch==[\d.]+ -e \"\.\[test,plot\]\"", first)
    assert "python -m reference check" in first
    assert re.search(r"^\.venv/bin/pytest -n auto$", first, re.M)


def test_readme_test_command_is_the_one_ci_runs():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(\.venv/bin/pytest[^\n]*)$", readme, re.M).group(1)
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(command)}$", ci, re.M), f".ci/run does not run the README's {command!r}"


def test_readme_carries_no_dated_measurement():
    text = (ROOT / "README.md").read_text()
    dated = re.findall(r"\b20\d\d-\d\d-\d\d\b|\b\d+(?:\.\d+)?\s?(?:s|ms|min)\b(?! each)", text)
    assert not dated, f"README.md: {dated}; measured figures belong in docs/measurements.md with their command"
