"""The calibration of the golden policy, as a module of the package (issue: the tolerances are a
specification, not a benchmark's output):

    configurations.py  the benign configurations (specs/benign_configurations.toml) and the CI rotation
    ensemble.py        the runs under each configuration and each real change (cached, one process each)
    derive.py          the policy rows from the benign runs, the jackknife, the report
    stability.py       the gate under the benign configuration of the day (CI)

    python -m reference.calibration calibrate [--write]   (about an hour on 2 cores)
    python -m reference.calibration stability [--all | --config NAME | --list] [-- COMMAND ...]
"""
