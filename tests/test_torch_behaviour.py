"""Facts about torch that the tutorial programs rely on without saying so (specs/torch_behaviour.toml)."""
from __future__ import annotations

import pytest

from reference.injections import INJECTIONS
from reference.facts import optimizer_default_mismatches


def test_optimizer_defaults_the_tutorials_rely_on_are_torchs():
    assert optimizer_default_mismatches() == []


@pytest.mark.parametrize("name", [n for n in INJECTIONS if n.split()[0] in ("adam", "sgd", "rmsprop")])
def test_a_changed_optimizer_default_is_named(name):
    """The check above catches what the goldens can miss (SGD weight_decay 1e-6, Adam eps): each
    injected default change is reported, by optimiser and constant."""
    with INJECTIONS[name]():
        mismatches = optimizer_default_mismatches()
    optimizer = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}[name.split()[0]]
    constant = name.split()[1]
    assert any(line.startswith(f"{optimizer} {constant}:") for line in mismatches), mismatches
    assert optimizer_default_mismatches() == [], "the injection was not undone"
