"""Argument types shared by the command-line entry points (argparse ``type=`` callables:
a bad value becomes argparse's one-line usage error, exit code 2)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """``text`` as an integer >= 1, else ``argparse.ArgumentTypeError``."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value
