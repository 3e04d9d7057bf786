"""What every command-line entry point shares: the parser, argument types, the help
formatter and a quiet TensorFlow. Nothing here imports TensorFlow, so ``--help`` stays
fast."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys


def positive_int(text: str) -> int:
    """``text`` as an integer >= 1, else ``argparse.ArgumentTypeError`` (an argparse
    ``type=``: a bad value becomes argparse's one-line usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (unless its help already says ``default``) and
    keeps the description's own line breaks (file layouts, examples)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text.lower() or action.default is None
                or action.default is False or action.default is argparse.SUPPRESS):
            # identity checks: ``in (None, False, ...)`` would also hide 0 and 0.0 (0 == False)
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`HelpFormatter` by default, whose usage
    errors are one line, ``PROG: error: MESSAGE (see --help)``, exit code 2 (argparse
    prints the whole usage block first, which buries the message). Subcommands made
    with ``add_subparsers`` are ``Parser`` too."""

    def __init__(self, *args, formatter_class=None, **kwargs):
        super().__init__(*args, formatter_class=formatter_class or HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_verbose(p: argparse.ArgumentParser) -> None:
    """``--verbose``: let TensorFlow's C++ log lines through (see :func:`quiet_tensorflow`)."""
    p.add_argument("--verbose", action="store_true",
                   help="show TensorFlow's own log lines (hidden by default)")


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow with its start-up chatter hidden: the absl pre-init notice, the
    oneDNN and CUDA-probing lines (printed from C++ at import and at the first device
    query, whatever ``TF_CPP_MIN_LOG_LEVEL`` says) and later warnings such as grappler's
    ``remapper failed``. Call it in ``main`` before importing anything that imports
    TensorFlow. ``verbose=True`` imports it untouched, with every log line."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # C++ errors that matter become exceptions
    if "tensorflow" in sys.modules:
        return
    with _stderr_silenced():
        import tensorflow as tf
        tf.config.list_physical_devices("GPU")  # the CUDA probe logs here, once


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null for the block (C++ writes bypass
    ``sys.stderr``); a Python exception raised inside still reaches the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
