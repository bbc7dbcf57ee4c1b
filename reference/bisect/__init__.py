"""bisect: which torch release changed what a program computes, and in which op.

    search.py        the binary search over ordered environments, the boundary verified, the op, the verdict
    environments.py  one environment per release (cached, reused), or the user's interpreters
    worker.py        what runs inside each environment

The door is reference/cli/bisect.py (`python -m reference bisect`).
"""
