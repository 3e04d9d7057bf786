"""How command-line entry points report bad input: one line, no traceback."""
from __future__ import annotations

import sys

from data.layout import DataError


def run_cli(fn) -> int:
    """Run ``fn()``; turn expected user errors into ``error: ...`` on stderr, exit code 2."""
    try:
        fn()
    except (DataError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished files and checkpoints are kept; rerun to resume",
              file=sys.stderr)
        return 130
    return 0
