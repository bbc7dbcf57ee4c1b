"""Golden loss trajectories: every variant, both dtypes, recorded on the CPU at one thread.

A CUDA run starts from the same numbers as the CPU run and is judged against the same CPU goldens
under the CUDA rows of specs/golden_policy.toml.
"""
from __future__ import annotations

import pytest

from reference.harness.running import check_full_precision
from reference.harness.threads import CANONICAL_THREADS
from reference.harness.trajectory import params_record
from reference.judge import goldens as golden_files
from reference.judge.goldens import GoldenKey
from reference.judge.verdict import judge
from reference.testing.summary import DEVICE_CHECK_PROPERTY

pytestmark = pytest.mark.golden

VARIANT_SEEDS = sorted({(k.variant, k.seed) for k in golden_files.all_keys()})


@pytest.mark.parametrize("variant_id, seed", VARIANT_SEEDS, ids=[f"{v}-seed{s}" for v, s in VARIANT_SEEDS])
def test_golden_trajectory(variant_id, seed, device, dtype, golden):
    """The run is the golden's under the policy (the judgement `torch-examples-spec check` makes too)."""
    golden.check(GoldenKey(variant_id, dtype, seed), device=device)


def test_every_golden_file_belongs_to_a_golden_of_the_policy():
    """A golden no key of specs/golden_policy.toml names is checked by nothing: it must go."""
    stray = golden_files.unused_files()
    assert not stray, (
        "these golden files match no variant/dtype/seed of specs/golden_policy.toml; delete them "
        "(or add their seeds to the policy):\n  git rm " + " ".join(str(p) for p in stray))


@pytest.mark.cuda
@pytest.mark.parametrize("variant_id", [v for v, s in VARIANT_SEEDS if s == 0 and not v.endswith(".numpy")])
def test_cuda_run_matches_cpu_run_from_the_same_start(variant_id, dtype, cached_run, request):
    """The two devices directly, same seed and start, under the CUDA rows of the policy."""
    steps = GoldenKey(variant_id, dtype, 0).steps
    cpu = cached_run(variant_id, dtype=dtype, steps=steps, threads=CANONICAL_THREADS)
    cuda = cached_run(variant_id, dtype=dtype, steps=steps, device="cuda", threads=CANONICAL_THREADS)
    cpu64 = cached_run(variant_id, dtype="float64", steps=steps, threads=CANONICAL_THREADS).losses
    verdict = judge(variant_id, dtype, cuda.losses, cpu.losses, device="cuda", reference64=cpu64,
                    now_params=params_record(cuda.params), reference_params=params_record(cpu.params))
    label = golden_files.device_check_label(cuda, cpu)
    request.node.user_properties.append((DEVICE_CHECK_PROPERTY, f"{label}: {verdict.summary()}"))
    assert verdict.ok, f"{label}: {verdict.summary()}"
    check_full_precision(cuda)  # TF32 read back off and the matmul probe at IEEE float32


# TF32 (pytorch/pytorch#47844) rounds float32 matmul inputs to a 10-bit mantissa; the variants
# without a matrix product (the elementwise polynomials, NumPy) cannot see it.
TF32_BLIND = {"poly.tensor", "poly.autograd", "poly.custom_function", "poly.module", "poly.dynamic"}
TF32_VARIANTS = [v for v, s in VARIANT_SEEDS
                 if s == 0 and not v.endswith(".numpy") and v not in TF32_BLIND]
TF32_STEPS = 60  # the early steps are where the CUDA rows are tight


@pytest.mark.parametrize("variant_id", TF32_VARIANTS)
def test_cuda_rows_catch_tf32_rounding_cpu_float32(variant_id, cached_run):
    """TF32 left on is what the CUDA tests exist to catch: emulated on the CPU, it must fail the
    float32 CUDA rows of the policy (judged against the CPU golden, as a CUDA run is)."""
    from reference.injections import INJECTIONS

    steps = min(GoldenKey(variant_id, "float32", 0).steps, TF32_STEPS)
    plain = cached_run(variant_id, dtype="float32", steps=steps, threads=CANONICAL_THREADS)
    with INJECTIONS["float32 matmul at TF32 precision"]():
        emulated = __import__("reference").run(variant_id, dtype="float32", steps=steps, threads=CANONICAL_THREADS)
    assert emulated.losses != plain.losses, "the TF32 emulation did not change the run: nothing was tested"
    gold = golden_files.read(GoldenKey(variant_id, "float32", 0))["losses"][:steps]
    gold64 = golden_files.read(GoldenKey(variant_id, "float64", 0))["losses"][:steps]
    verdict = judge(variant_id, "float32", emulated.losses, gold, device="cuda", reference64=gold64)
    assert not verdict.ok, f"TF32 rounding passes the CUDA rows: {verdict.summary()}"


def test_every_shipped_golden_is_written_in_the_current_schema():
    """One environment record format: a schema-1 file is read through the migration, but none ships."""
    old = [str(k) for k in golden_files.all_keys() if golden_files.read(k).get("schema_on_disk") != golden_files.SCHEMA]
    assert old == [], f"rewrite them with `pytest --update-goldens` where they reproduce bit for bit: {old}"
