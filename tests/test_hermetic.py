"""No test's verdict depends on the day's CI configuration: the tests that read the process environment
(marked `environment`) pass under the variables of every configuration of the rotation
(specs/benign_configurations.toml), as CI will run them one day each. The whole gate under each is
`python benchmarks/stability.py --all`; this is the cheap, every-run part of it."""
from __future__ import annotations

from pathlib import Path

import pytest

from reference.calibration import configurations

ROOT = Path(__file__).resolve().parent.parent
SENSITIVE = ["tests/test_environment.py", "tests/test_compare.py"]


@pytest.mark.parametrize("name", configurations.rotation())
def test_environment_reading_tests_pass_under_every_rotation_configuration(name, pytester, monkeypatch):
    env_vars, _threads = configurations.benign()[name]  # the thread count moves runs, not what is read
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    result = pytester.runpytest_inprocess(
        "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), "-p", "no:xdist", "-p", "no:cacheprovider",
        "-p", "no:randomly", "-q", "-m", "environment", *[str(ROOT / f) for f in SENSITIVE])
    outcomes = result.parseoutcomes()
    assert result.ret == 0 and outcomes.get("passed", 0) >= 6, "\n".join(result.outlines[-30:])


def test_the_rotation_covers_every_configuration_that_moves_torch():
    moving = [n for n in configurations.benign() if n != "canonical" and n not in configurations.numpy_only()]
    assert configurations.rotation() == moving


def test_every_file_with_environment_tests_is_run_under_the_rotation():
    """A test marked `environment` in a file the rotation test does not run would go unchecked."""
    marked = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py")
              if "mark.environment" in p.read_text() and p.name != Path(__file__).name}
    assert marked <= set(SENSITIVE), f"add to SENSITIVE: {sorted(marked - set(SENSITIVE))}"

