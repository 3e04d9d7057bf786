"""Luo et al. Fig. 6: DECaLS inputs with artifacts, and the pseudo-HSC made from them.

    python experiments/figure6.py                 # cpu preset: Table 1's Pix2WGAN
    python experiments/figure6.py --galaxy ID ...

Columns (the paper's order): a DECaLS image with a satellite streak, one with strong
noise, one blurred (bad seeing). Rule
(:func:`experiments.luo_common.select_artifacts`): test galaxies whose
``defects_decals`` flags hold that defect (alone first, other surveys clean first,
then by id); on real data without flags, the highest image statistic. Rows: DECaLS,
Pix2WGAN pseudo-HSC, HSC. Writes ``results/figure6.{png,pdf}`` and
``results/figure6_galaxies.csv``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import Parser
from experiments import luo_common as lc

KINDS = ("streak", "noisy", "blurred")
PAPER = ("Fig. 6: DECaLS inputs with streak-like artifacts (left), significant noise "
         "(middle) and blur (right); after translation the streak 'almost disappeared', "
         "the noise is 'greatly reduced' and the blur 'alleviated to some extent'.")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/figure6.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    return p


def run(args) -> list[Path]:
    return lc.artifact_figure(args, PAPER, "decals", KINDS, 6)


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
