"""The source documents as facts: every citation resolves to specs/sources.toml, and what the
documents print is consistent with the reference (specs/printed_losses.toml, the `Result:` lines)."""
from __future__ import annotations

import re

import pytest

import reference
from reference.catalogue import cite, load_sources, source_id
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
