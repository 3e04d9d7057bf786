"""Luo et al. Figs 8 and 9: SDSS (top) | Cascade Pix2WGAN pseudo-HSC (middle) | HSC.

    python experiments/figure8_9.py                  # cpu preset: Table 1's cascade
    python experiments/figure8_9.py --galaxy ID [--galaxy ID2 ...]

The same six galaxies as ``figure3_4.py`` (the same rule,
:func:`experiments.luo_common.select_showcase`), as the paper does (§4.3). The model is
Table 1's Pseudo-HSC² cascade G2∘G1 (``runs/table1-<preset>-cascade``; trained with
Table 1's settings if missing); it sees SDSS only. Writes
``results/figure8.{png,pdf}``, ``results/figure9.{png,pdf}`` and
``results/figure8_9_galaxies.csv``; ``--galaxy`` writes ``results/figure8_9_custom.*``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import Parser
from experiments import luo_common as lc

PAPER = ("Figs 8-9: the galaxies of Figs 3-4; rows SDSS, Cascade Pix2WGAN pseudo-HSC, "
         "HSC. Text (§4.3): spiral arms, disks, tidal tails, bridges and central fine "
         "structure invisible in SDSS are 'clearly presented'; slightly worse than the "
         "DECaLS-based pseudo-HSC of Figs 3-4.")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/figure8_9.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    return p


def run(args) -> list[Path]:
    return lc.showcase_figures(args, PAPER, "cascade", "sdss", "pseudo-HSC (cascade)",
                               "figure8_9", first=8)


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
