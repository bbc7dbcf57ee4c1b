"""The golden policy's mechanics (reference/judge: rules, checks, verdict) and its calibrated rows
(specs/golden_tolerances.toml): bands, the tail statistic, the final parameters, CUDA rows."""
from __future__ import annotations

import datetime
import math

import numpy as np
import pytest

from reference.calibration import configurations
from reference.harness import threads
from reference.judge import goldens as golden, rules as policy
from reference.judge.goldens import GoldenKey
from reference.judge.status import Status
from reference.judge.verdict import judge


def test_every_golden_has_a_calibrated_row_whose_bands_start_at_step_0():
    for key in golden.all_keys():
        rule = policy.rule_for(key.variant, key.dtype)
        assert rule.bands and rule.bands[0].start == 0, key
        assert all(b.tolerance.rtol > 0 for b in rule.bands), key
        assert rule.horizon == key.steps or rule.tail is not None, f"{key}: steps after the horizon go unjudged"


def test_band_tolerances_never_shrink_along_a_trajectory():
    """Benign drift only grows with training: a tighter band after a looser one would be a guess."""
    for key in golden.all_keys():
        rtols = [b.tolerance.rtol for b in policy.rule_for(key.variant, key.dtype).bands]
        assert rtols == sorted(rtols), key


def test_a_step_just_outside_its_band_fails_naming_the_step():
    gold = golden.read(GoldenKey("mlp.nn", "float64", 0))["losses"]
    rule = policy.rule_for("mlp.nn", "float64")
    step = rule.bands[-1].start
    rtol = rule.bands[-1].tolerance.rtol
    inside, outside = list(gold), list(gold)
    inside[step] *= 1 + rtol / 2
    outside[step] *= 1 + 2 * rtol
    assert judge("mlp.nn", "float64", inside, gold).status == Status.CLOSE
    verdict = judge("mlp.nn", "float64", outside, gold)
    assert verdict.status == Status.DIVERGED and verdict.first_bad_step == step
    assert f"step {step} is off" in verdict.summary()


def _chaotic_row() -> tuple[GoldenKey, policy.Rule]:
    """A float64 row with a tail (float32 rows add the shadow check, which noise also moves)."""
    for key in golden.all_keys():
        rule = policy.rule_for(key.variant, key.dtype)
        if rule.tail is not None and key.dtype == "float64":
            return key, rule
    pytest.fail("no float64 golden has a tail row: the tail criterion is untested")


def test_tail_accepts_pointwise_noise_and_flags_a_shifted_level():
    """After the horizon, steps are judged by the mean log loss of tail segments: noise that leaves
    the level alone passes; the same tail shifted by twice the allowance fails."""
    key, rule = _chaotic_row()
    gold = np.array(golden.read(key)["losses"])
    h = rule.horizon
    noisy = gold.copy()
    rng = np.random.default_rng(0)
    # multiplicative noise whose log averages to ~0 over a segment
    noisy[h:] *= np.exp(rng.normal(0, 1e-3 * rule.tail.atol, len(gold) - h))
    shifted = gold.copy()
    shifted[h:] *= math.exp(2 * rule.tail.atol)
    assert judge(key.variant, key.dtype, noisy, gold, rule=rule).ok
    verdict = judge(key.variant, key.dtype, shifted, gold, rule=rule)
    assert not verdict.ok and "tail" in verdict.summary()


def test_editing_one_final_parameter_in_a_golden_fails_naming_the_parameter():
    record = golden.read(GoldenKey("poly.module", "float64", 0))
    params = record["final_params"]
    rule = policy.rule_for("poly.module", "float64")
    name = sorted(params)[1]
    edited = dict(params)
    value = float(np.ravel(params[name])[0])
    edited[name] = [value + 10 * (rule.params.atol + rule.params.rtol * abs(value))]
    ok = judge("poly.module", "float64", record["losses"], record["losses"],
                        now_params=params, reference_params=params)
    bad = judge("poly.module", "float64", record["losses"], record["losses"],
                         now_params=edited, reference_params=params)
    assert ok.status == Status.EXACT
    assert bad.status == Status.DIVERGED and f"final parameter {name}" in bad.summary()


def test_cuda_rows_are_the_cpu_rows_widened_and_say_whether_measured():
    factor = policy.policy_table()["cuda"]["widen"]
    cpu, cuda = policy.rule_for("mlp.nn", "float32", "cpu"), policy.rule_for("mlp.nn", "float32", "cuda:0")
    assert [b.tolerance.rtol * factor for b in cpu.bands] == pytest.approx([b.tolerance.rtol for b in cuda.bands])
    assert cuda.measured is bool(policy.policy_table()["cuda"].get("measured", False))


def test_a_variant_without_a_row_is_refused_with_the_command_that_measures_it():
    with pytest.raises(policy.PolicyError, match="calibration calibrate --variants no.such"):
        policy.rule_for("no.such", "float64")


def test_gate_threads_reads_tes_threads_and_refuses_nonsense(monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    assert threads.gate_threads() == threads.CANONICAL_THREADS
    monkeypatch.setenv(threads.THREADS_ENV, "3")
    assert threads.gate_threads() == 3
    monkeypatch.setenv(threads.THREADS_ENV, "two")
    with pytest.raises(ValueError, match="TES_THREADS='two'.*Valid choices"):
        threads.gate_threads()


def test_stability_rotation_visits_every_benign_configuration_that_moves_torch():
    rotation = configurations.rotation()
    days = [configurations.config_of_the_day(datetime.date(2026, 1, 1) + datetime.timedelta(d))
            for d in range(len(rotation))]
    assert sorted(days) == sorted(rotation)
    assert "canonical" not in days and not set(days) & configurations.numpy_only()
    env = configurations.environment("mixed-default-3threads", base={})
    assert env == {"TES_THREADS": "3", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                   "OPENBLAS_CORETYPE": "Sandybridge"}


def test_calibrating_some_variants_rewrites_their_rows_and_keeps_every_other_row():
    import tomllib

    from reference.calibration import derive, outputs
    from reference.catalogue import specs_dir

    text = (specs_dir() / policy.TOLERANCES_FILE).read_text()
    before = tomllib.loads(text)
    assert tomllib.loads(outputs.merge_rows(text, [], [], [0])) == before  # nothing re-derived: nothing moves
    row = {"bands": [{"from": 0, "to": 500, "rtol": 3e-14, "atol": 0.0}], "params": {"rtol": 1e-12, "atol": 0.0}}
    merged = tomllib.loads(outputs.merge_rows(text, [derive.RowReport("poly.nn", "float64", row)], ["canonical"], [0]))
    assert merged["poly.nn"]["float64"]["bands"] == row["bands"] and "tail" not in merged["poly.nn"]["float64"]
    merged["poly.nn"]["float64"] = before["poly.nn"]["float64"]
    assert merged == before


def test_calibration_refuses_unknown_names_and_writing_rows_from_some_configurations(capsys):
    from reference.calibration.__main__ import main as calibration

    for argv, named in ((["--variants", "mlp.nope"], "not a golden variant: mlp.nope. Valid choices: "),
                        (["--configs", "threads9"], "not a benign configuration: threads9. Valid choices: "),
                        (["--configs", "threads2", "--write"], "drop --configs to write")):
        with pytest.raises(SystemExit) as exc:
            calibration(["calibrate", *argv])
        assert exc.value.code == 2 and named in capsys.readouterr().err
