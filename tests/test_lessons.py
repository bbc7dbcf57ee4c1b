"""The lesson order as data: each variant's spec names the variant it follows (`after`), and
`side_branch = true` marks an alternative beside its predecessor rather than a step of the tutorial
(mlp.variable beside mlp.autograd: the legacy API, not a step towards MyReLU).

The `after` links must form a forest: one first program per family, every variant reached from it,
no cycle, at most one main-line step after any variant, and the main line of each family exactly
the tutorial's. `python -m reference list` prints that order and each variant's predecessor.
"""
from __future__ import annotations

import shutil

import pytest

import reference
from reference import catalogue
from reference.cli import main

# The tutorial's lesson order ("Learning PyTorch with Examples"), per family.
TUTORIAL = ("numpy", "tensor", "autograd", "custom_function", "nn", "optim", "module", "dynamic")
MAIN_LINES = {
    "mlp": [f"mlp.{lesson}" for lesson in TUTORIAL],
    "poly": [f"poly.{lesson}" for lesson in TUTORIAL],
    "mnist": ["mnist.quickstart"],
}
SIDE_BRANCHES = {"mlp.variable": "mlp.autograd", "mlp.module_adam": "mlp.module",
                 "mnist.quickstart_fixed": "mnist.quickstart"}


def root_of(vid: str) -> str:
    """Follow `after` to the family's first program; fails on a cycle."""
    seen = [vid]
    while (after := reference.VARIANTS[seen[-1]].after) is not None:
        assert after not in seen, f"`after` links form a cycle: {' -> '.join([*seen, after])}"
        seen.append(after)
    return seen[-1]


def test_after_links_form_a_forest_with_one_first_program_per_family():
    variants = reference.VARIANTS
    for vid, v in variants.items():
        assert v.after is None or variants[v.after].family == v.family, f"{vid}: after = {v.after!r}"
    roots = {vid for vid, v in variants.items() if v.after is None}
    assert sorted(variants[r].family for r in roots) == sorted(MAIN_LINES), roots
    for vid, v in variants.items():
        root = root_of(vid)
        assert variants[root].family == v.family and root in roots, (vid, root)


def test_no_variant_has_two_main_line_successors():
    steps: dict[str, list[str]] = {}
    for vid, v in reference.VARIANTS.items():
        if v.after is not None and not v.side_branch:
            steps.setdefault(v.after, []).append(vid)
    assert {k: s for k, s in steps.items() if len(s) > 1} == {}


def test_main_line_of_each_family_is_the_tutorials_lesson_order():
    assert {family: catalogue.main_line(family) for family in MAIN_LINES} == MAIN_LINES


def test_every_variant_is_on_the_main_line_or_a_side_branch_of_its_predecessor():
    on_main_line = {vid for line in MAIN_LINES.values() for vid in line}
    assert set(reference.VARIANTS) == on_main_line | set(SIDE_BRANCHES)
    for vid, v in reference.VARIANTS.items():
        assert v.side_branch is (vid in SIDE_BRANCHES), vid
    assert {vid: reference.VARIANTS[vid].after for vid in SIDE_BRANCHES} == SIDE_BRANCHES


def test_main_line_lesson_numbers_increase_and_a_side_branch_is_numbered_after_its_predecessor():
    variants = reference.VARIANTS
    for line in MAIN_LINES.values():
        lessons = [variants[vid].lesson for vid in line]
        assert lessons == sorted(set(lessons)), (line, lessons)
    for vid, after in SIDE_BRANCHES.items():
        assert variants[vid].lesson >= variants[after].lesson, vid


def test_lesson_order_lists_every_variant_once_each_after_its_predecessor():
    order = [v.id for v in catalogue.lesson_order()]
    assert sorted(order) == sorted(reference.VARIANTS)
    for i, vid in enumerate(order):
        after = reference.VARIANTS[vid].after
        assert after is None or order.index(after) < i, (vid, after)


def test_list_prints_each_main_line_and_every_variants_predecessor(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for family, line in MAIN_LINES.items():
        assert f"  {family}: {' -> '.join(line)}" in lines
    rows = {row.split()[0]: row.split(None, 1)[1] for row in lines
            if row and not row.startswith(" ") and row.split()[0] in reference.VARIANTS}
    assert set(rows) == set(reference.VARIANTS)
    for vid, v in reference.VARIANTS.items():
        expected = (v.after or "-") + (" (side branch)" if v.side_branch else "")
        assert rows[vid].startswith(expected + "  "), (vid, rows[vid])
    assert rows["mlp.variable"].startswith("mlp.autograd (side branch)")
    assert rows["mlp.custom_function"].startswith("mlp.autograd  ")


@pytest.mark.parametrize("field, value, says", [
    ("after", '"mlp.nowhere"', "after = 'mlp.nowhere' names no mlp variant. Valid choices: mlp."),
    ("after", '"poly.numpy"', "after = 'poly.numpy' names no mlp variant"),
    ("side_branch", "true", "a side branch needs `after`"),
], ids=["unknown", "other_family", "side_branch_without_after"])
def test_a_spec_whose_after_is_wrong_is_refused_naming_the_file(tmp_path, monkeypatch, field, value, says):
    shutil.copytree(catalogue.specs_dir() / "variants", tmp_path / "variants")
    spec = tmp_path / "variants" / "mlp.numpy.toml"
    spec.write_text(spec.read_text().replace("lesson = 1\n", f"lesson = 1\n{field} = {value}\n", 1))
    monkeypatch.setattr(catalogue, "specs_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match="mlp.numpy.toml") as err:
        catalogue.load_variants.__wrapped__()
    assert says in str(err.value)
