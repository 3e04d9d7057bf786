"""Luo et al. Figs 3 and 4: DECaLS (top) | Pix2WGAN pseudo-HSC (middle) | HSC (bottom).

    python experiments/figure3_4.py                  # cpu preset: Table 1's Pix2WGAN
    python experiments/figure3_4.py --preset paper   # the paper-size run
    python experiments/figure3_4.py --galaxy ID [--galaxy ID2 ...]   # any galaxies

Six test galaxies, three per figure, chosen by :data:`experiments.luo_common.SHOWCASE`
(Fig 3: spiral, companion/tidal feature, bulge-dominated; Fig 4: spiral, inclined
disk, knotty "point-like" galaxy; each the top-ranked clean one), so that
``figure8_9.py`` shows the same six. The generator is Table 1's Pseudo-HSC¹ model
(``runs/table1-<preset>``; trained with Table 1's settings if missing).
Writes ``results/figure3.{png,pdf}``, ``results/figure4.{png,pdf}`` and
``results/figure3_4_galaxies.csv`` (per-panel RMSE/SSIM); ``--galaxy`` writes
``results/figure3_4_custom.*`` instead.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import Parser
from experiments import luo_common as lc

PAPER = ("Figs 3-4: six test galaxies (three per figure); rows DECaLS, Pix2WGAN "
         "pseudo-HSC, HSC. Text (§4.2): spiral of the first galaxy 'nearly perfectly' "
         "reconstructed, the tidal tail (Fig 3 middle) and point-like structure (Fig 4 "
         "right) reproduced, disk of Fig 4 middle more pronounced; background noise "
         "reduced; pseudo-HSC 'still fall[s] short in overall clarity' of HSC.")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python experiments/figure3_4.py",
               description=__doc__.split("\n\n")[0])
    lc.add_common_args(p)
    return p


def run(args) -> list[Path]:
    return lc.showcase_figures(args, PAPER, "pix2wgan", "decals",
                               "pseudo-HSC (Pix2WGAN)", "figure3_4", first=3)


def main(argv=None) -> int:
    return lc.cli(run, build_parser, argv)


if __name__ == "__main__":
    from common.errors import exit_process
    exit_process(main())
