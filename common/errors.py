"""How command-line entry points report bad input: one line, no traceback."""
from __future__ import annotations

import os
import sys


class DataError(ValueError):
    """Bad or missing input data. The message names the file or value at fault."""



class _LineTracker:
    """A ``sys.stdout`` / ``sys.stderr`` stand-in that remembers whether the last
    character written ended a line, so an error after a progress bar (which ends in
    ``\\r``) starts on its own line. Everything else is forwarded to the real stream."""

    def __init__(self, stream):
        self._stream, self.at_line_start = stream, True

    def write(self, text):
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def run_cli(fn) -> int:
    """Run ``fn()``; turn expected user errors into one ``error: ...`` line on stderr,
    exit code 2. ``OSError`` covers missing files and unwritable or read-only outputs
    (its message names the path)."""
    streams = sys.stdout, sys.stderr = _LineTracker(sys.stdout), _LineTracker(sys.stderr)
    try:
        fn()
    except (DataError, ValueError, OSError) as err:
        _say(streams, f"error: {err}")
        return 2
    except KeyboardInterrupt:
        _say(streams, "interrupted: finished files and checkpoints are kept; rerun to "
                      "resume")
        return 130
    finally:
        sys.stdout, sys.stderr = (s._stream for s in streams)
    return 0


def _say(streams, line: str) -> None:
    """Print ``line`` on stderr, on a line of its own (a progress bar on either stream
    may have left the cursor mid-line)."""
    for s in streams:
        s.flush()
    if not all(s.at_line_start for s in streams):
        streams[1].write("\n")
    print(line, file=streams[1], flush=True)


def exit_process(code: int):
    """End the program with ``code``: what every ``if __name__ == "__main__"`` calls.

    A failed run with TensorFlow loaded ends at once (``os._exit`` after flushing),
    skipping interpreter shutdown: there, a ``tf.data`` iterator whose parallel ``map``
    still has ``tf.numpy_function`` calls in flight (the Lin et al. FITS reader, after a
    bad cube) waits in its destructor for those calls, which wait for the GIL the
    destructor holds, and the process never exits. Checkpoints and outputs are already on
    disk (atomic writes), so nothing is lost. A success exits normally."""
    if code and "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
