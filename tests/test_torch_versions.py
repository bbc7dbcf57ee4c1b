"""The day a torch release comes out: every version-keyed fact of the spec is found by one rule, a torch
outside the verified range is measured and compared with the newest verified release below it (See
Note [a torch the spec was not verified on]), nothing caps the torch a user's environment provides,
and no version string makes the spec fail with "no row"."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from packaging.version import Version

from reference import facts
from reference.facts import FactChanged

ROOT = Path(__file__).resolve().parent.parent
ROWS = [{"torch": ">=2.1,<2.14", "value": 1.0}, {"torch": ">=2.14", "value": 0.0}]
NEWEST = max(facts.verified_versions())


@pytest.mark.parametrize("version, release, verified, reference", [
    ("2.13.0", "2.13.0", True, "2.13.0"),
    ("2.14.1+cu130", "2.14.1", True, "2.14.1"),  # a build of a verified release is that release
    ("2.13.0+cpu", "2.13.0", True, "2.13.0"),
    ("2.13.5", "2.13.5", False, "2.13.0"),  # an unverified patch release: the newest verified below it
    ("99.1.0", "99.1.0", False, str(NEWEST)),  # newer than every verified release
    ("99.1.0+cu130", "99.1.0", False, str(NEWEST)),  # a local build of an unverified version
    ("99.2.0.dev20270115", "99.2.0.dev20270115", False, str(NEWEST)),  # a nightly
    ("2.14.0rc1", "2.14.0rc1", False, "2.13.0"),  # a pre-release is not the release
    ("2.0.1", "2.0.1", False, None),  # older than the floor: nothing below to compare with
])
def test_one_rule_finds_the_release_whose_rows_a_version_takes(version, release, verified, reference):
    assert str(facts.release(version)) == release
    assert facts.is_verified(version) is verified
    ref = facts.reference_release(version)
    assert (None if ref is None else str(ref)) == reference
    assert (facts.outside_note(version) is None) is verified


def test_rows_of_the_reference_release_apply_and_no_version_finds_none_by_accident():
    assert [r["value"] for r in facts.rows_for(ROWS, "2.13.0")] == [1.0]
    assert [r["value"] for r in facts.rows_for(ROWS, "99.1.0")] == [0.0]  # the newest verified release's row
    assert facts.rows_for(ROWS, "2.0.1") == []


def test_the_verified_range_is_named_in_the_note():
    note = facts.outside_note("99.1.0")
    assert note.startswith("torch 99.1.0 is outside the versions this specification was verified on (")
    assert f"{min(facts.verified_versions())} .. {NEWEST}" in note


def test_every_verified_release_has_a_row_in_every_version_keyed_table():
    from reference.catalogue import load_toml

    tables = {name: rows for name, rows in load_toml("torch_behaviour.toml").items()
              if isinstance(rows, list) and rows and "torch" in rows[0]}
    for version in facts.verified_versions():
        for name, rows in tables.items():
            assert len(facts.rows_for(rows, str(version))) == 1, (name, version)


def test_a_torch_outside_the_range_that_measures_as_its_reference_passes_with_a_note(monkeypatch):
    measured = facts.MEASURE["clamp_min_grad_at_zero"]()

    def unverified_after(v: Version) -> str:
        return f"{v.major}.{v.minor}.{v.micro + 7}"

    # an unverified version whose reference release states what this torch measures
    newer, same = next((unverified_after(v), facts.reference_release(unverified_after(v)))
                       for v in facts.verified_versions()
                       if facts.rows_for(facts._table("clamp_min_grad_at_zero"),
                                         unverified_after(v))[0]["value"] == measured)
    monkeypatch.setattr(torch, "__version__", newer)
    found = facts.lookup("clamp_min_grad_at_zero")
    assert not found.verified and not found.changed and found.value == measured
    assert found.note() == f"clamp(min=0) gradient at 0: {measured} measured here, as on {same}"
    assert facts.fact("clamp_min_grad_at_zero") == measured


def test_a_fact_that_changed_since_the_newest_verified_release_is_named_not_a_missing_row(monkeypatch):
    """The measured value wins over the nearest row, and the difference is said: taking the nearest
    row silently, or raising for a version no row names, both fail here."""
    measured = facts.MEASURE["clamp_min_grad_at_zero"]()
    other = next(str(v) for v in facts.verified_versions()
                 if facts.rows_for(facts._table("clamp_min_grad_at_zero"), str(v))[0]["value"] != measured)
    newer = f"{Version(other).major}.{Version(other).minor}.{Version(other).micro + 7}.dev20270115"
    monkeypatch.setattr(torch, "__version__", newer)
    found = facts.lookup("clamp_min_grad_at_zero")
    assert found.changed and found.value == measured
    reference_release = facts.reference_release(newer)
    with pytest.raises(FactChanged, match=rf"clamp\(min=0\) gradient at 0: {measured} here, .* on {reference_release} "
                                          r"\(changed since the newest verified release\)"):
        facts.fact("clamp_min_grad_at_zero")
    assert facts.clamp_passes_gradient_at_zero() is (measured == 1.0)  # what this torch does


def test_proposed_rows_state_the_measured_facts_for_the_new_release(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch, "__version__", "99.1.0+cu130")
    text = facts.proposed_rows(facts.version_keyed_facts())
    assert '[[clamp_min_grad_at_zero]]\ntorch = "==99.1.0"' in text
    assert f"value = {facts.MEASURE['clamp_min_grad_at_zero']()!r}" in text


SCRIPT = textwrap.dedent("""
    import io, json, sys, contextlib
    import torch
    results = {}
    for version in sys.argv[1:]:
        torch.__version__ = version
        from reference.cli import main
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["check", "-q", "--variants", "mlp.autograd,poly.tensor", "-k", "float64",
                           "-k", "gradient at exactly 0"])
        results[version] = {"status": status, "out": out.getvalue(), "err": err.getvalue()}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def checks_under_other_versions():
    """`check` with the installed torch reporting other versions, in one subprocess (one torch import)."""
    versions = ["99.1.0", "99.2.0.dev20270115", "99.1.0+cu130", "2.0.1"]
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *versions], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", ["99.1.0", "99.2.0.dev20270115", "99.1.0+cu130", "2.0.1"])
def test_check_under_an_unverified_torch_says_so_and_judges_by_what_it_measures(checks_under_other_versions,
                                                                                version):
    result = checks_under_other_versions[version]
    assert "Traceback" not in result["err"] and "no row" not in result["out"] + result["err"]
    assert f"torch {version} is outside the versions this specification was verified on" in result["out"]
    measured = facts.MEASURE["clamp_min_grad_at_zero"]()
    stated = facts.rows_for(facts._table("clamp_min_grad_at_zero"), version)
    changed = bool(stated) and stated[0]["value"] != measured
    assert result["status"] == (1 if changed else 0), result["out"]
    for row in ("mlp.autograd float64 seed 0", "poly.tensor float64 seed 0"):  # every golden still passes
        assert re.search(rf"{re.escape(row)}\s+(exact|close)", result["out"]), result["out"]
    if changed:  # named as a change since the newest verified release
        assert "changed since the newest verified release" in result["out"]
        assert result["out"].rstrip().splitlines()[-2].startswith("DIVERGED beyond the policy in mlp.autograd: "
                                                                   "mlp.autograd: gradient at exactly 0")


def test_the_built_wheel_caps_neither_torch_nor_numpy(tmp_path):
    """Installing the package beside a newer torch must not replace that torch (or give up)."""
    import zipfile

    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "setuptools" in proc.stderr:
        pytest.skip(f"no setuptools to build with here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("torch_examples_spec-*.whl")
    with zipfile.ZipFile(wheel) as z:
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = {r.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip(): r for r in requires if "extra ==" not in r}
    assert "torch" in core and "numpy" in core
    for name in ("torch", "numpy"):
        assert "<" not in core[name] and "!=" not in core[name] and "==" not in core[name], core[name]
