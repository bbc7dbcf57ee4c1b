"""`python benchmarks/stability.py [--config NAME | --all | --list] [-- COMMAND ...]`: the gate (or a
command) under the benign configuration of the day; the same as `python -m reference.calibration
stability` (reference/calibration/stability.py), kept at the path CI and the docs have always used."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reference.calibration.stability import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(cwd=ROOT))
