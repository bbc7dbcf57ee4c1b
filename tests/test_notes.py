"""Named notes, in the spirit of PyTorch's: a tricky fact is explained once, in a block that starts
with a line holding only `Note [...]` (after a comment marker, if any; an underline of ~ may
follow), and cited elsewhere by name (`See Note [...]`) instead of being explained again.

Across the project's text (reference/, specs/, tests/, benchmarks/, README.md) every note cited
must be defined exactly once, and every note defined must be cited at least once; a name is never
broken across lines, so a citation cannot hide from these checks.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("reference", "specs", "tests", "benchmarks")
SUFFIXES = {".py", ".toml", ".md", ".sh", ".txt"}
NOTE = re.compile(r"Note \[([A-Za-z][^\]\n]*)\]")
DEFINITION = re.compile(r"^\s*(?:#+|//)?\s*Note \[([A-Za-z][^\]\n]*)\]\s*$")
BROKEN = re.compile(r"Note \[[A-Za-z][^\]]*$")  # a name that runs past the end of its line


def text_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder in SCANNED:
        files += sorted(p for p in (ROOT / folder).rglob("*")
                        if p.suffix in SUFFIXES and p.is_file() and "goldens" not in p.parts
                        and "__pycache__" not in p.parts)
    return files


def scan(files: list[Path]) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]]:
    """(definitions, citations, broken): name -> ['path:line', ...], and 'path:line' of broken names."""
    defined: dict[str, list[str]] = defaultdict(list)
    cited: dict[str, list[str]] = defaultdict(list)
    broken: list[str] = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{number}"
            definition = DEFINITION.match(line)
            if definition:
                defined[definition.group(1)].append(where)
                continue
            for name in NOTE.findall(line):
                cited[name].append(where)
            if BROKEN.search(line):
                broken.append(where)
    return defined, cited, broken


def test_every_cited_note_is_defined_exactly_once():
    defined, cited, _ = scan(text_files())
    assert cited, "no note is cited anywhere: the scan found nothing, so it tests nothing"
    dangling = {name: places for name, places in cited.items() if name not in defined}
    assert dangling == {}, f"cited but never defined: {dangling}"
    twice = {name: places for name, places in defined.items() if len(places) > 1}
    assert twice == {}, f"defined more than once: {twice}"


def test_every_defined_note_is_cited_at_least_once():
    defined, cited, _ = scan(text_files())
    assert defined, "no note is defined anywhere: the scan found nothing, so it tests nothing"
    unused = {name: places for name, places in defined.items() if name not in cited}
    assert unused == {}, f"defined but never cited: {unused}"


def test_no_note_name_is_broken_across_lines():
    _, _, broken = scan(text_files())
    assert broken == [], f"a note's name runs onto the next line (cite it on one line): {broken}"


def test_the_scan_tells_definitions_citations_dangling_and_broken_names_apart(tmp_path):
    """The checks above on a small tree whose answer is known."""
    n = "Note"  # spelled apart, so that this file's own text cites nothing
    (tmp_path / "a.py").write_text(f"# {n} [alpha]\n# ~~~~~~~~~~~~\n# the fact\nx = 1  # See {n} [alpha]\n")
    (tmp_path / "b.toml").write_text(f'k = "See {n} [alpha] in a.py"\n# {n} [beta]\n# See {n} [gamma]\n'
                                     f"# See {n} [delta\n# wrapped]\n")
    defined, cited, broken = scan(sorted(tmp_path.iterdir()))
    assert {k: len(v) for k, v in defined.items()} == {"alpha": 1, "beta": 1}
    assert {k: len(v) for k, v in cited.items()} == {"alpha": 2, "gamma": 1}
    assert broken == [f"{tmp_path / 'b.toml'}:4"]
