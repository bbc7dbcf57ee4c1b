"""Loads the suite's pytest plugin, a module of the package (reference/testing/plugin.py), and
pytester, with which the plugin's own tests run sessions of their own."""
pytest_plugins = ["reference.testing.plugin", "pytester"]
