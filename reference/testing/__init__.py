"""The pytest plugin of the suite (plugin.py, loaded by the root conftest.py), the golden fixture
(goldens.py), the runs shared by xdist workers (runs.py) and trajectory recording (recording.py)."""
