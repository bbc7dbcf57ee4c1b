"""The source documents as facts: every citation resolves to specs/sources.toml, and what the
documents print is consistent with the reference (specs/printed_losses.toml, the `Result:` lines)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import reference
from reference.catalogue import cite, load_sources, load_toml, source_id
from reference.cli import main

# --- sources you can resolve ----------------------------------------------------------------------

SOURCES = load_sources()


def test_every_variant_source_resolves_to_the_sources_table():
    unresolved = [(vid, entry) for vid, v in reference.VARIANTS.items() for entry in v.sources
                  if source_id(entry) not in SOURCES]
    assert not unresolved, f"not in specs/sources.toml: {unresolved}; valid ids: {', '.join(SOURCES)}"
    errata = [(vid, e["source"]) for vid, v in reference.VARIANTS.items() for e in v.errata
              if source_id(e["source"]) not in SOURCES]
    assert not errata, f"errata citing ids not in specs/sources.toml: {errata}"


def test_sources_table_lists_exactly_the_variants_that_cite_each_document():
    for sid, doc in SOURCES.items():
        citing = {vid for vid, v in reference.VARIANTS.items() if sid in map(source_id, v.sources)}
        assert set(doc["documents"]) == citing, sid


def test_each_source_has_a_title_date_language_kind_and_what_it_covers():
    for sid, doc in SOURCES.items():
        for key in ("title", "date", "language", "kind", "covers", "documents"):
            assert doc.get(key), f"{sid} has no {key}"
        assert doc["date"] == "undated" or re.fullmatch(r"\d{4}-\d\d-\d\d", doc["date"]), sid


def test_no_source_id_reads_as_an_rng_seed():
    for sid in SOURCES:
        assert not re.search(r"seed|^\d+$", sid, re.IGNORECASE), sid


def test_list_prints_every_variants_sources_with_their_titles(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for v in reference.VARIANTS.values():
        for entry in v.sources:
            assert cite(entry) in out
    assert "[not in specs/sources.toml]" not in out and "specs/sources.toml" in out


# --- the polynomial programs' `Result:` line --------------------------------------------------------

POLY = [vid for vid, v in reference.VARIANTS.items() if v.family == "poly"]
NUMBER = r"(-?[0-9.]+(?:e[-+]?\d+)?)"


def _short(vid: str) -> int:
    return 3000 if vid == "poly.dynamic" else reference.VARIANTS[vid].steps


@pytest.mark.parametrize("vid", POLY)
def test_result_line_states_the_final_parameters_of_the_run(vid, cached_run):
    from reference.result_line import result_line

    t = cached_run(vid, steps=_short(vid), threads=1)
    line = result_line(t)
    body = re.sub(r"x\^\d|P3", "", line.removeprefix("Result: y = "))  # powers and P3 are not fitted
    numbers = [float(x) for x in re.findall(NUMBER, body)]
    p = t.params
    if "0.weight" in p:  # Linear(3, 1) over (x, x^2, x^3): y = bias + w0 x + w1 x^2 + w2 x^3
        expected = [p["0.bias"].item(), *p["0.weight"].reshape(-1).tolist()]
    else:
        expected = [p[k].item() for k in sorted(p)]
    if vid == "poly.dynamic":  # e appears twice: e x^4 ? + e x^5 ?
        expected.append(expected[-1])
    assert numbers == expected  # bit for bit: repr of a float reads back exactly


def test_cli_prints_the_result_line_after_a_poly_run(capsys):
    from reference.result_line import result_line

    assert main(["run", "poly.nn", "--steps", "50"]) == 0
    out = capsys.readouterr().out
    assert result_line(reference.run("poly.nn", steps=50, threads=1)) + "\n" in out


def test_result_line_is_refused_for_a_variant_without_one(cached_run):
    from reference.result_line import result_line

    with pytest.raises(ValueError, match="Valid choices: the poly"):
        result_line(cached_run("mlp.nn", steps=2, threads=1))


# --- the MLP post's printed losses against the reference's band ----------------------------------------

PRINTED = load_toml("printed_losses.toml")
BANDS = load_toml("printed_loss_bands.toml")
WITNESS = load_toml("tolerances.toml")["printed_losses"]["witness"]


def _printed_cases() -> list:
    cases = []
    for name, program in PRINTED["program"].items():
        findings = program.get("findings", {})
        for i, step in enumerate(PRINTED["steps"]):
            marks = []
            if str(step) in findings:  # outside the band: a finding, recorded in specs/printed_losses.toml
                marks = [pytest.mark.xfail(strict=True, reason=f"finding: {findings[str(step)]}")]
            cases.append(pytest.param(name, i, id=f"{name}-step{step}", marks=marks))
    return cases


@pytest.mark.parametrize("program, i", _printed_cases())
def test_printed_loss_lies_inside_the_reference_band_at_its_step(program, i):
    """blog-nn-2022's printed loss is one unseeded float32 run: a draw of x, y and the weights from
    the same distributions the reference draws them from. It should lie in the [min, max] of the
    reference's losses at that step over the band's seeds (specs/printed_loss_bands.toml)."""
    p = PRINTED["program"][program]
    band = BANDS["variant"][p["variant"]]
    step, printed = PRINTED["steps"][i], p["printed"][i]
    assert band["min"][i] <= printed <= band["max"][i], (
        f"{program} ({p['variant']}) step {step}: printed {printed:.6g} outside the band "
        f"[{band['min'][i]:.6g}, {band['max'][i]:.6g}] over {band['n']} seeds"
    )


def _witness_check(variant: str, seed: int, losses: list[float]) -> None:
    band = BANDS["variant"][variant]
    now = [losses[s] for s in PRINTED["steps"]]
    stored = band["witnesses"][seed]
    np.testing.assert_allclose(now, stored, **WITNESS, err_msg=(
        f"{variant} seed {seed}: the current torch no longer gives the losses the band was measured "
        f"with; re-measure it (the command is in specs/printed_loss_bands.toml)"))
    # the band's edges were measured on one kernel path: widened by the witness tolerance
    r = WITNESS["rtol"]
    assert all(lo * (1 - r) <= x <= hi * (1 + r) for lo, x, hi in zip(band["min"], now, band["max"]))


@pytest.mark.parametrize("variant", list(BANDS["variant"]))
def test_stored_band_still_holds_for_the_current_torch_at_seed_0(variant, cached_run):
    _witness_check(variant, 0, cached_run(variant, threads=1).losses)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(BANDS["variant"]))
def test_stored_band_still_holds_for_the_current_torch_at_every_witness_seed(variant, cached_run):
    for seed in range(len(BANDS["variant"][variant]["witnesses"])):
        _witness_check(variant, seed, cached_run(variant, seed=seed, threads=1).losses)
