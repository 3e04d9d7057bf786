"""Luo et al. Fig. 5: HSC targets with artifacts, and the pseudo-HSC that cleans them.

    python experiments/figure5.py                 # cpu preset: Table 1's Pix2WGAN
    python experiments/figure5.py --galaxy ID ...

Columns (the paper's order): an HSC image with a satellite streak, one with strong
noise, one partly overexposed (a saturated star). Rule
(:func:`experiments.luo_common.select_artifacts`): test galaxies whose manifest flags
``defects_hsc`` hold that defect (alone first, other surveys clean first, then by id);
on real data without flags, the highest image statistic. Rows: DECaLS input,
Pix2WGAN pseudo-HSC, HSC. Writes ``results/figure5.{png,pdf}`` and
``results/figure5_galaxies.csv``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import Parser
from experiments import luo_common as lc

KINDS = ("streak", "noisy", "saturated")
PAPER = ("Fig. 5: real HSC images with a streak-like artifact (left), prominent noise "
         "(middle) and partial overexposure (right); the pseudo-HSC made from DECaLS "
         "'successfully remove[s] the artifacts, reduce[s] noise ... and correct[s] the "
         "overexposure'.")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/figure5.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    return p


def run(args) -> list[Path]:
    return lc.artifact_figure(args, PAPER, "hsc", KINDS, 5, lines=[
        "note: RMSE/SSIM here are against the flawed HSC image itself, so a pseudo-HSC "
        "that removes the artifact is *penalised*; physics.py compares with the "
        "noise-free truth"])


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
