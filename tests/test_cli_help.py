"""Every command-line entry point: ``--help`` works without importing TensorFlow, shows
each default once, and bad input is one ``error:`` line with exit code 2."""
import argparse

from common.cli import HelpFormatter


def _help(*specs) -> str:
    p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    for flag, kw in specs:
        p.add_argument(flag, **kw)
    return p.format_help()


def test_formatter_shows_zero_defaults_once_and_hides_none_false_suppress():
    text = _help(("--seed", dict(type=int, default=0, help="seed")),
                 ("--lr", dict(type=float, default=0.0, help="rate")),
                 ("--n", dict(type=int, default=3, help="count (default 3)")),
                 ("--data", dict(default=None, help="folder")),
                 ("--quiet", dict(action="store_true", help="no bars")),
                 ("--hidden", dict(default=argparse.SUPPRESS, help="secret")))
    assert "seed (default: 0)" in text and "rate (default: 0.0)" in text
    assert "count (default 3)" in text and text.count("default") == 3
    assert "folder\n" in text and "no bars\n" in text and "secret\n" in text
