"""Loads the suite's pytest plugin, a module of the package: reference/testing/plugin.py."""
pytest_plugins = ["reference.testing.plugin"]
