"""Download survey cutouts: ``python -m data.download <source> ...`` (needs internet).

Sources (:data:`SUBCOMMANDS`, in the order ``--help`` lists them):

``legacy``     Luo et al. (§2.4) JPEG triplets from the Legacy Survey viewer
               (``data.legacy``);
``sdss-fits``  Lin et al. SDSS ugriz FITS cubes from the calibrated frames (``data.sdss``);
``cfht-fits``  Lin et al. CFHTLS ugriz FITS cubes via the CADC cutouts (``data.cfht``);
``pairs``      the paired / unpaired SDSS-CFHT sets from those pools (``data.lin_pairs``).

Each source module has ``add_parser(subparsers)`` (adds its subparser) and ``run(args)
-> int | None`` (the exit code; ``None`` means 0).
"""
from __future__ import annotations

import argparse
import functools

from common.cli import HelpFormatter, Parser
from common.errors import run_cli
from data import cfht, legacy, lin_pairs, sdss

#: ``name -> module`` of each subcommand (the name its ``add_parser`` adds).
SUBCOMMANDS = {"legacy": legacy, "sdss-fits": sdss, "cfht-fits": cfht, "pairs": lin_pairs}


class _SubcommandHelp(HelpFormatter):
    """:class:`HelpFormatter` that wraps the description (subcommands give one long
    line)."""
    _fill_text = argparse.HelpFormatter._fill_text


def build_parser() -> argparse.ArgumentParser:
    """The dispatcher: one subparser per entry of :data:`SUBCOMMANDS`."""
    parser = Parser(prog="python -m data.download", description=__doc__.split("\n\n")[0])
    # every subcommand's parser shows its defaults too, whichever module adds it
    sub = parser.add_subparsers(
        dest="command", metavar="SOURCE",
        parser_class=functools.partial(Parser,
                                       formatter_class=_SubcommandHelp))
    for name, mod in SUBCOMMANDS.items():
        mod.add_parser(sub)
        sub.choices[name].set_defaults(run=mod.run)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a source: " + ", ".join(
            parser._subparsers._group_actions[0].choices))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code = []
    rc = run_cli(lambda: code.append(args.run(args)))
    return rc or (code[0] or 0 if code else 0)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
