"""The command line: `python -m reference` (installed: `torch-examples-spec`), one module per command
over the layers below (run, list, compare, check, locate, bisect). Exit statuses, every command:
0 something was judged (or done) and nothing diverged, 1 something diverged, 2 bad input or nothing
judged (See Note [one status, four words])."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..errors import UsageError
from . import bisect, check, compare, list as list_command, locate, run
from .arguments import progress

__all__ = ["UsageError", "build_parser", "main"]

COMMANDS = (list_command, run, compare, check, locate, bisect)


def program_name(argv0: str | None = None) -> str:
    """What the user typed: `torch-examples-spec` for the installed script, else `python -m reference`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    name = os.path.basename(argv0)
    return "python -m reference" if name in ("__main__.py", "-c", "") or name.endswith(".py") else name


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or program_name(),
        description="The 'Learning PyTorch with Examples' programs as an executable specification: run them, "
                    "check an installed torch against the shipped goldens, compare recordings.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,run,compare,check,locate,bisect}")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, OSError) as exc:
        progress.end()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.end()
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
