"""The command line's error type, shared by reference.cli and reference.judge.recordings (no import cycle)."""
from __future__ import annotations


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit status 2."""
